"""The progress meter and the take status, as small HTML fragments with their state in words.

Pure functions of the store's stats, so they are tested without a browser. State is always said
in text and shown with a shape (✓ ● ✗ ↑), never by colour alone.
"""

from __future__ import annotations

from html import escape

MILESTONES: tuple[tuple[int, str], ...] = (
    (50, "About 50 takes are enough for a first personal model: research on atypical speech saw "
         "error rates fall by roughly two thirds."),
    (100, "With 100 takes the model hears more of your sounds and words, so it makes fewer "
          "mistakes on phrases it has never seen."),
    (500, "Around 500 takes (30-90 minutes) is what speech-therapy projects ask for: the model then "
          "copes with tired days, new words and longer sentences."),
)
REST_AFTER_S = 10 * 60  # seconds of recorded speech before a gentle reminder to rest


def milestone_line(takes: int) -> str:
    for goal, why in MILESTONES:
        if takes < goal:
            return f"Next milestone: {goal} takes ({goal - takes} to go). {why}"
    return f"You passed every milestone ({MILESTONES[-1][0]} takes). Every extra take still helps."


def _when(seconds: float) -> str:
    if seconds < 5:
        return "now"
    if seconds < 90:
        return f"in about {round(seconds / 5) * 5} s"
    return f"in about {round(seconds / 60)} min"


def hub_line(pending: int, last_error: str | None, repo_id: str | None,
             next_push_s: float | None = None, survives_restart: bool = True) -> str:
    if repo_id is None:
        return "Kept in the local folder (not pushed anywhere)."
    if pending == 0:
        return f"↑ All takes are on the Hub, in {escape(repo_id)}."
    going = f" (next upload {_when(next_push_s)})" if next_push_s is not None else ""
    safe = ("they are safe on this machine." if survives_restart
            else "your browser keeps a copy until they are on the Hub.")
    line = f"↑ {pending} take{'s' if pending != 1 else ''} waiting to upload{going}; {safe}"
    if last_error:
        line += f" Last upload attempt: {escape(last_error)} We keep retrying."
    return line


def progress_html(*, takes: int, minutes: float, pending: int, last_error: str | None,
                  repo_id: str | None, next_push_s: float | None = None, notice: str | None = None,
                  survives_restart: bool = True) -> str:
    share = min(1.0, takes / MILESTONES[0][0]) if takes < MILESTONES[0][0] else min(
        1.0, takes / MILESTONES[-1][0])
    goal = next((g for g, _ in MILESTONES if takes < g), MILESTONES[-1][0])
    return (
        '<div class="vx-progress">'
        f'<p class="vx-counts"><strong>{takes}</strong> take{"s" if takes != 1 else ""} saved · '
        f"<strong>{minutes:.1f}</strong> minutes of speech</p>"
        f'<progress max="{goal}" value="{min(takes, goal)}" aria-label="Takes toward the next milestone">'
        f"{share:.0%}</progress>"
        f'<p class="vx-milestone">{escape(milestone_line(takes))}</p>'
        f'<p class="vx-hub">{hub_line(pending, last_error, repo_id, next_push_s, survives_restart)}</p>'
        + (f'<p class="vx-notice"><span aria-hidden="true">ℹ</span> {escape(notice)}</p>' if notice else "")
        + "</div>"
    )


def status_html(kind: str, message: str, *, rest: bool = False) -> str:
    """A state in words and a shape. Each kind means one thing: ready | recording (the recorder),
    saved / rejected (a take was stored / was not: "Not saved"), done / error (any other action
    finished / failed), info (a note). `rest` marks a reminder to rest (pauses hands-free)."""
    shape = {"ready": "▶", "recording": "●", "saved": "✓", "rejected": "✗", "info": "ℹ", "done": "✓",
             "error": "✗"}[kind]
    label = {"ready": "Ready", "recording": "Recording", "saved": "Saved", "rejected": "Not saved",
             "info": "Note", "done": "Done", "error": "Error"}[kind]
    return (f'<div class="vx-status vx-{kind}" data-state="{kind}"{" data-rest" if rest else ""}>'
            '<span aria-hidden="true" '
            f'class="vx-shape">{shape}</span> <strong>{label}:</strong> {escape(message)}</div>')


LOADING_PHRASE = ('<div class="vx-phrase vx-loading"><p class="vx-phrase-label">Loading your phrases…'
                  "</p></div>")


def phrase_html(text: str | None, language: str = "", phrase_id: str = "") -> str:
    """The phrase to read; `phrase_id` rides along so the browser can keep it with the take."""
    if text is None:
        return ('<div class="vx-phrase"><p class="vx-phrase-text">You have read every phrase in this '
                "list. Add your own phrases below, or pick another language.</p></div>")
    return ('<div class="vx-phrase"><p class="vx-phrase-label">Read this aloud:</p>'
            f'<p class="vx-phrase-text" lang="{escape(language)}" data-phrase-id="{escape(phrase_id)}">'
            f"{escape(text)}</p></div>")


def rest_reminder(spoken_s: float) -> str | None:
    if spoken_s >= REST_AFTER_S:
        return (f"You have recorded {spoken_s / 60:.0f} minutes of speech. Take a rest if you need one: "
                "your progress is saved and will be here when you come back.")
    return None
