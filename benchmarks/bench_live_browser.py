"""The Live tab's browser path, Gradio's webcam stream against FastRTC (WebRTC), side by side (issue 18).

    pip install --no-deps fastrtc && pip install aiortc   # fastrtc pins gradio<6: never let it resolve gradio
    python benchmarks/bench_live_browser.py [--weights checkpoints] [--seconds 10] [--threads 2] [--repeats 1]
                                            [--paths gradio fastrtc]

``--paths gradio`` measures the Live tab alone (FastRTC need not be installed); with
``TALKING_HEAD_LIVE_STREAM_EVERY=0.05`` in the environment it asks the webcam for a frame every 0.05 s.

Both in headless Debian Chromium (/usr/bin/chromium, driven by Playwright) with a fake camera playing
examples/driver.mp4 (256x256, 25 fps, as Y4M), the example avatar (the astronaut, personalised feed-forward
with ``--weights``), 256 px output, ``LiveConfig(bf16=True)`` as the app's tab uses, one process:

- **gradio**: the app itself (``app.build_demo``), its Live tab as a visitor uses it (example avatar, Start):
  ``gr.Image(sources="webcam").stream(..., stream_every=TALKING_HEAD_LIVE_STREAM_EVERY)`` (default 0.1 s).
- **fastrtc**: FastRTC's ``Stream`` (``VideoStreamHandler(step, skip_frames=True)``) mounted on a FastAPI
  app, with a plain-JavaScript WebRTC client page (getUserMedia, RTCPeerConnection, POST /webrtc/offer).
  FastRTC's own Gradio component (``fastrtc.WebRTC``) is not used: fastrtc 0.0.34 requires gradio<6 and its
  compiled frontend does not load under Gradio 6 (``svelte_runtime_entry.js`` 404, then "Cannot destructure
  property 'SvelteComponent' of 'window.__gradio__svelte__internal'"). No STUN/TURN: aiortc's host candidates
  are patched to 127.0.0.1 and the page keeps only its 127.0.0.1 candidates
  (``--allow-loopback-in-peer-connection``), so all traffic stays on loopback.

Measured over ``--seconds`` after the first generated frame: **shown frames/s** in the page (Gradio: changes of
``#live-output img``'s source; WebRTC: frames the output ``<video>`` presented, ``requestVideoFrameCallback``),
**server frames/s** and **server latency** (``LiveSession.step``'s ``latency_ms``: from the frame reaching the
handler to its generated image, median and p95), and for WebRTC the receiver's jitter-buffer delay
(``getStats``). Neither includes the capture/encode/transport before the handler. Run on a shared 2-core CPU:
the load average is printed; compare rows of one run (ratios), not runs taken at different loads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # talking_head_app, and app_support: the browser tests' helpers

PAGE = """<!doctype html><html><body>
<video id=cam autoplay muted playsinline width=320></video><video id=out autoplay muted playsinline width=320></video>
<script>
window.shown = []; window.errors = [];
async function start() {
  const media = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480},
                                                                  frameRate: {ideal: 30}}});
  cam.srcObject = media;
  const pc = new RTCPeerConnection({iceServers: []}); window.pc = pc;
  media.getTracks().forEach(t => pc.addTrack(t, media));
  pc.ontrack = e => { out.srcObject = e.streams[0] || new MediaStream([e.track]); };
  pc.createDataChannel('text');  // FastRTC's handler waits for it
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') r(); }); });
  const sdp = pc.localDescription.sdp.split('\\r\\n')
      .filter(l => !l.startsWith('a=candidate') || l.includes(' 127.0.0.1 ')).join('\\r\\n');
  const id = Math.random().toString(36).slice(2); window.rtcId = id;
  const answer = await (await fetch('/webrtc/offer', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                     body: JSON.stringify({sdp, type: 'offer', webrtc_id: id})})).json();
  if (!answer.sdp) throw new Error('offer refused: ' + JSON.stringify(answer));
  await pc.setRemoteDescription(answer);
  await fetch('/rtc/start', {method: 'POST', headers: {'Content-Type': 'application/json'},
                             body: JSON.stringify({webrtc_id: id})});
  const cb = (now, meta) => { window.shown.push([now, meta.presentedFrames]); out.requestVideoFrameCallback(cb); };
  out.requestVideoFrameCallback(cb);
}
start().catch(e => { window.errors.push(String(e)); console.error(e); });
</script></body></html>"""

#: Counts changes of the Gradio output image's source (the img element may be replaced).
WATCH_GRADIO = """() => {
  window.changes = []; let last = null;
  const look = () => { const img = document.querySelector('#live-output img');
    const src = img && img.getAttribute('src'); if (src && src !== last) { last = src; window.changes.push(performance.now()); } };
  new MutationObserver(look).observe(document.querySelector('#live-output'), {subtree: true, childList: true,
                                                                             attributes: true});
}"""

JITTER_JS = """async () => { const out = {}; (await window.pc.getStats()).forEach(s => {
  if (s.type === 'inbound-rtp' && s.kind === 'video') Object.assign(out, {jb: s.jitterBufferDelay,
    n: s.jitterBufferEmittedCount, decoded: s.framesDecoded, dropped: s.framesDropped, w: s.frameWidth});
  if (s.type === 'outbound-rtp' && s.kind === 'video') Object.assign(out, {sent: s.framesSent, sw: s.frameWidth});
}); return out; }"""


class StepLog:
    """Every ``LiveSession.step`` of this process: (time, latency ms), recorded by wrapping the method."""

    def __init__(self) -> None:
        from talking_head.live import LiveSession

        self.entries: list[tuple[float, float]] = []
        original = LiveSession.step

        def step(session, frame, captured_at=None):
            shown = original(session, frame, captured_at)
            if shown.face_found:
                self.entries.append((time.monotonic(), shown.latency_ms))
            return shown

        LiveSession.step = step

    def between(self, start: float, end: float) -> np.ndarray:
        return np.array([ms for t, ms in self.entries if start <= t <= end])


def fastrtc_app(pipe, avatar, config):
    """FastRTC's Stream on a FastAPI app with PAGE at /; host candidates on loopback only."""
    import aioice.ice
    import cv2
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse
    from fastrtc import Stream, VideoStreamHandler, get_current_context

    from talking_head.live import LiveSession

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    sessions, lock = {}, threading.Lock()

    def step(frame_bgr, *_):  # FastRTC hands BGR frames and expects BGR back
        with lock:
            webrtc_id = get_current_context().webrtc_id
            session = sessions.get(webrtc_id) or sessions.setdefault(webrtc_id,
                                                                     LiveSession(avatar, config, pipe.detector))
        return cv2.cvtColor(session.step(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)).image, cv2.COLOR_RGB2BGR)

    stream = Stream(VideoStreamHandler(step, skip_frames=True), modality="video", mode="send-receive",
                    time_limit=600, concurrency_limit=4, rtc_configuration={"iceServers": []}, verbose=False)
    app = FastAPI()
    stream.mount(app)
    app.get("/")(lambda: HTMLResponse(PAGE))

    @app.post("/rtc/start")
    async def start(body: dict):  # without FastRTC's Gradio component nothing sets the handler's arguments
        for _ in range(200):
            if stream.connections.get(body["webrtc_id"]):
                stream.set_input(body["webrtc_id"], body["webrtc_id"])
                return {"ok": True}
            await asyncio.sleep(0.05)
        return {"ok": False}

    return app


def serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def measure_gradio(browser, url: str, log: StepLog, seconds: float) -> dict:
    from app_support import start_live_example

    page = start_live_example(browser, url)
    time.sleep(1.0)  # past the first frames (neutral pose)
    page.evaluate(WATCH_GRADIO)
    began = time.monotonic()
    time.sleep(seconds)
    ended = time.monotonic()
    changes = page.evaluate("() => window.changes")
    status = page.locator("#live-stats").inner_text()
    page.context.close()
    return {"shown": (len(changes) - 1) / ((changes[-1] - changes[0]) / 1000) if len(changes) > 1 else 0.0,
            "latency": log.between(began, ended), "seconds": ended - began, "extra": f"status line: {status!r}"}


def measure_fastrtc(browser, url: str, log: StepLog, seconds: float) -> dict:
    page = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
    page.goto(url)
    page.wait_for_function("() => window.errors.length > 0 || window.shown.length > 5", timeout=120_000)
    if errors := page.evaluate("() => window.errors"):
        raise RuntimeError(f"the WebRTC page failed: {errors}")
    time.sleep(1.0)
    first, stats0 = page.evaluate("() => window.shown.at(-1)"), page.evaluate(JITTER_JS)
    began = time.monotonic()
    time.sleep(seconds)
    ended = time.monotonic()
    last, stats1 = page.evaluate("() => window.shown.at(-1)"), page.evaluate(JITTER_JS)
    page.evaluate("() => window.pc.close()")  # frees the server's connection (its concurrency slot) now
    page.context.close()
    emitted = stats1["n"] - stats0["n"]
    jitter = 1000 * (stats1["jb"] - stats0["jb"]) / emitted if emitted else float("nan")
    return {"shown": (last[1] - first[1]) / ((last[0] - first[0]) / 1000), "latency": log.between(began, ended),
            "seconds": ended - began,
            "extra": f"receiver jitter buffer {jitter:.0f} ms a frame; camera {stats1.get('sw')} px sent at "
                     f"{(stats1['sent'] - stats0['sent']) / (ended - began):.1f} frames/s; output decoded at "
                     f"{(stats1['decoded'] - stats0['decoded']) / (ended - began):.1f} frames/s, "
                     f"{stats1.get('w')} px"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each path, alternated")
    parser.add_argument("--paths", nargs="+", choices=["gradio", "fastrtc"], default=["gradio", "fastrtc"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    import gradio as gr
    import imageio_ffmpeg
    from app_support import free_port, headless_chromium, load_app_module

    from talking_head.live import LiveConfig
    from talking_head.pipeline import TalkingHeadPipeline
    from talking_head_app.handlers import AppSettings, TalkingHeadApp

    load = os.getloadavg()
    pipe = TalkingHeadPipeline.from_pretrained(args.weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize([ROOT / "examples" / "astronaut.jpg"], steps=0)
    log = StepLog()
    with tempfile.TemporaryDirectory() as tmp:
        y4m = Path(tmp) / "driver.y4m"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i",
                        str(ROOT / "examples" / "driver.mp4"), "-pix_fmt", "yuv420p", str(y4m)], check=True)
        app = TalkingHeadApp(pipe, AppSettings(), work_root=Path(tmp) / "requests")
        demo = load_app_module().build_demo(app)
        gradio_port, rtc_port = free_port(), free_port()
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=gradio_port, quiet=True)
        rtc_server = (serve(fastrtc_app(pipe, avatar, LiveConfig(bf16=True)), rtc_port)  # before Playwright
                      if "fastrtc" in args.paths else None)
        paths = {"gradio": ("gradio stream", measure_gradio, f"http://127.0.0.1:{gradio_port}/"),
                 "fastrtc": ("fastrtc webrtc", measure_fastrtc, f"http://127.0.0.1:{rtc_port}/")}
        rows = []
        try:
            with headless_chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                   "--allow-loopback-in-peer-connection",
                                   f"--use-file-for-fake-video-capture={y4m}") as browser:
                for run in range(args.repeats):
                    for name, measure, url in (paths[path] for path in args.paths):
                        load_before = os.getloadavg()[0]
                        result = measure(browser, url, log, args.seconds)
                        rows.append((run + 1, name, load_before, result))
                        print(f"# {name} run {run + 1} done", file=sys.stderr, flush=True)
        finally:
            if rtc_server is not None:
                rtc_server.should_exit = True
            demo.close()
    end = os.getloadavg()
    print(f"{os.cpu_count()} cores, torch {torch.__version__} with {args.threads} threads, gradio {gr.__version__}, "
          f"fastrtc {version('fastrtc') if rtc_server else '(not run)'}, stream_every "
          f"{os.environ.get('TALKING_HEAD_LIVE_STREAM_EVERY', '0.1')} s; load average at start "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, at the end {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} "
          f"(1 / 5 / 15 min); fake camera examples/driver.mp4 256x256 25 fps; output 256 px; {args.seconds:g} s "
          f"a path\n")
    print("| run | path | load (1 min) | shown frames/s (page) | server frames/s | server latency median (ms) | "
          "p95 (ms) | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for run, name, load_before, result in rows:
        latency = result["latency"]
        print(f"| {run} | {name} | {load_before:.2f} | {result['shown']:.1f} | {len(latency) / result['seconds']:.1f} | "
              f"{np.median(latency):.0f} | {np.percentile(latency, 95):.0f} | {result['extra']} |")


if __name__ == "__main__":
    main()
