"""talking-head: few-shot adversarial talking-head models (Zakharov et al., ICCV 2019)."""
