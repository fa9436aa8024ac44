"""Speech -> a talking head: the mouth's motion from a voice, a head that lives while it speaks.

The flow, one module a stage::

    audio (decode, check) -> features (loudness in the voice's band, spectral tilt, per video frame)
        -> tracks (mouth opening, rounding; from phones where typed text gave them: ``tts``, ``visemes``)
        -> liveliness (blinks, head motion, brows on the voice's emphasis)
        -> driver (the tracks as 68 landmarks in the photo's own face) -> render (the driving path's
           retarget, warp and encode, the audio muxed in)

No model is downloaded: the audio path is signal processing in numpy, typed text goes through the
system's espeak-ng, which reports its phones and their times (docs/speak.md says why, with figures).
"""
