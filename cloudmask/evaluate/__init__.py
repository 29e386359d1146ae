"""`cloudmask evaluate`: score our models, the spectral baselines and peer tools on labelled scenes.

Every candidate sees the same pixels through the same path as the service: the scene's reflectance,
the candidate's bands, cloudmask.raster.tile.fitted chips (sized to the scene up to 1024 px, 64 px overlap; a
scene up to 1024 px is one chip of its own size), each chip's classes cropped (cloudmask.raster.stitch.CropStitcher;
run.served_mask). Candidates:
  * every model under --model-dir (cloudmask-6b/-4b, baseline-6b/-4b) whose bands the scene has;
  * ukis-csmask, L1C and L2A variants, 6-band and 4-band, whichever the scene's bands allow;
  * DL-L8S2-UV (6- and 4-band, cloud only) when its weights are in ../shared/peers.
Scores: cloud vs not-cloud on every scene (predicted shadow counts as not-cloud), three classes on
scenes whose labels have shadow; pooled over scenes and per scene; seconds per megapixel of the whole
chip-predict-stitch path. Agreement with ukis-csmask (the teacher of our U-Nets) is reported as
agreement, never as accuracy. False alarms: the fractions called cloud and shadow on held-out clear
ground (cloudmask.evaluate.clear; `--no-clear` skips it).

Modules: cli (the command: flags, the run, the files it writes), candidates (what is scored), run (scoring
every candidate on every scene), report (tables, Markdown, JSON), panels (the PNG panels and which masks they
show), labelled (the scenes), metrics, clear, heldout, gate, cards.
"""
