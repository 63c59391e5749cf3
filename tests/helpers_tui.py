"""Shared steps of the Pilot tests of the class browser."""

from __future__ import annotations

from tui.screen_browser import BrowserScreen

__all__ = ["browser_ready"]


async def browser_ready(pilot, app, tries: int = 200) -> BrowserScreen:
    """The browser once its classes, the automatic suggestion and the particle filter's
    columns are loaded (polled every 50 ms)."""
    for _ in range(tries):
        await pilot.pause(0.05)
        screen = app.screen
        if (
            isinstance(screen, BrowserScreen)
            and screen.job is not None
            and screen.auto is not None
            and screen.pfilter is not None
        ):
            return screen
    raise AssertionError("browser did not load")


async def open_detail(pilot, app, tries: int = 100) -> None:
    """Open the highlighted class's detail and wait until its member particles are shown."""
    await pilot.press("enter")
    for _ in range(tries):
        await pilot.pause(0.05)
        if app.screen.query(".sample"):
            break
