"""twodclass terminal UI (Textual): job form, live run view, class browser.

Entry points: ``twodclass tui [PARTICLES]`` (:mod:`tui.cli`) and ``twodclass browse JOBDIR``
(:mod:`tui.cli_browse`). Textual is imported lazily, inside ``run()``.
"""
