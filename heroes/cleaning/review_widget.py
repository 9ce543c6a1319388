"""Review the pictures cleaning flags by clicking (ipywidgets): every click appends a row to the decisions file."""

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import ipywidgets
import pandas
from ipywidgets.widgets import widget_description, widget_string

from heroes import paths
from heroes.cleaning import embedding_flags, report
from heroes.cleaning import review as decisions_file
from heroes.cleaning.flags import FLAG_COLUMNS
from heroes.data.decode import DecodeError, decode_image
from heroes.errors import UserError
from heroes.io import from_spreadsheet, read_csv

EMBEDDING_FLAGS = ("off_class", "label_issue")
WORDS = {"keep": "keep", "drop": "drop", "relabel": "relabel to"}


@dataclass(frozen=True)
class Item:
    """One flagged picture as shown: a caption, the class a relabel proposes, the note its decision row gets."""

    path: str
    sha256: str
    group: str
    caption: str
    suggested: str
    note: str


@dataclass
class Card:
    """The buttons that decide one picture, or every picture of a duplicate group at once."""

    items: tuple
    group: str  # the duplicate group a group card decides; "" for one picture
    buttons: dict  # decision -> ipywidgets.Button
    relabel_to: ipywidgets.Dropdown
    status: ipywidgets.HTML
    box: ipywidgets.Box

    @property
    def paths(self) -> tuple:
        return tuple(item.path for item in self.items)


def sections(flags: pandas.DataFrame) -> list:
    """``[(title, [(heading, [Item, ...]), ...])]``: duplicate groups (heading: the group), then off-class pictures
    and label issues, most certain first, then every other flag (heading None: one picture per entry)."""
    row = flags.drop_duplicates("path").set_index("path")

    def item(path, caption, suggested=""):
        group = row.at[path, "group_id"]
        return Item(path, row.at[path, "sha256"], group, caption, suggested or row.at[path, "label"],
                    f"review widget: {row.at[path, 'flag']}{' ' + group if group else ''}: {path}")

    found = [("duplicate groups", [(heading.replace("\n", " · "), [item(path, caption) for path, caption in members])
                                   for heading, members in report.flagged_groups(flags)])]
    for flag in EMBEDDING_FLAGS:
        ranked = embedding_flags.ranked(flags, flag)
        found.append((flag, [(None, [item(path, title, suggested)])
                             for path, title, suggested in zip(ranked["path"], ranked["title"], ranked["suggested"])]))
    # Unreadable files have nothing to show (flags.csv says why); embedding flags have their sections above.
    singles = flags[(flags["group_id"] == "") & ~flags["flag"].isin(["unreadable", *EMBEDDING_FLAGS])]
    for flag, rows in singles.sort_values("path").groupby("flag", sort=True):
        found.append((flag, [(None, [item(path, f"{label}: {action}")])
                             for path, label, action in zip(rows["path"], rows["label"], rows["action"])]))
    return [(title, entries) for title, entries in found if entries]


def thumbnail(path, side: int) -> tuple:
    """``(JPEG bytes, "640×480 PNG")`` of the picture fitted in ``side`` pixels; ``(b"", why)`` when undecodable."""
    try:
        image = decode_image(path)
    except DecodeError as error:
        return b"", f"unreadable: {error.reason}"
    facts = "{}×{} {}".format(*image.info["full_size"], image.format)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), facts


class ReviewWidget:
    """Flagged pictures with keep / drop / relabel buttons, live in JupyterLab and the classic notebook.

    Displayed, it offers the live widget and a static HTML grid of the same pictures: a frontend with widgets shows
    the first, papermill, nbconvert and viewers without a kernel the second. Nothing here waits for a click.
    """

    def __init__(self, flags: pandas.DataFrame, decisions_path, classes, thumb: int = 112):
        self.decisions_path = Path(decisions_path)
        self.classes = sorted(classes)
        self.thumb = thumb
        self.sections = sections(flags)
        self.cards = []
        self.recorded = decisions_file.decided(decisions_file.read_all(self.decisions_path))
        self._thumbnails = {}
        # Shared layouts and styles: one model each instead of one per widget, which papermill would store
        # (thousands of models, megabytes) in every executed notebook.
        self._layouts = {name: ipywidgets.Layout(**spec) for name, spec in {
            "plain": {}, "auto": {"width": "auto"}, "wrap": {"flex_flow": "row wrap"},
            "image": {"width": f"{thumb}px", "height": f"{thumb}px", "object_fit": "contain"},
            "picture": {"margin": "4px", "width": f"{max(thumb, 180)}px"},
            "group": {"border": "1px solid #ccc", "margin": "4px", "padding": "4px"}}.items()}
        self._styles = {"html": widget_string.HTMLStyle(), "button": ipywidgets.ButtonStyle(),
                        "dropdown": widget_description.DescriptionStyle()}
        self.message = self._html(f"Each click appends a row to {html.escape(str(self.decisions_path))}; "
                                  f"re-run the cleaning cell to apply it.")
        self.widget = self._box(ipywidgets.VBox, [self.message, *(self._section(title, entries)
                                                                 for title, entries in self.sections)])
        self._show_status()

    def card(self, path=None, group=None) -> Card:
        """The first card deciding the picture at ``path`` alone, or the card of the duplicate group ``group``."""
        for card in self.cards:
            if (group and card.group == group) or (path and not card.group and card.paths == (path,)):
                return card
        raise KeyError(path or group)

    def decide(self, card: Card, decision: str) -> None:
        """Append one row per picture of ``card`` without that decision yet; append nothing when one of them is
        already decided otherwise (the file refuses two decisions for a picture: a person changes it by hand)."""
        label = card.relabel_to.value if decision == "relabel" else ""
        try:  # read again: the file may have been edited since
            self.recorded = decisions_file.decided(decisions_file.read_all(self.decisions_path))
        except UserError as error:
            self.message.value = f"<b>not recorded</b>: {html.escape(str(error))}"
            return
        unique = list({item.sha256: item for item in card.items}.values())
        clash = [item for item in unique if item.sha256 in self.recorded.index
                 and self._decided(item) != self._said(decision, label)]
        if clash:
            self.message.value = (f"<b>not recorded</b>: {html.escape(Path(clash[0].path).name)} is already decided "
                                  f"({html.escape(self._decided(clash[0]))}); edit that row of "
                                  f"{html.escape(str(self.decisions_path))} to change it")
            return
        rows = [{"sha256": item.sha256, "decision": decision, "label": label, "note": item.note}
                for item in unique if item.sha256 not in self.recorded.index]
        if rows:
            decisions_file.append_decisions(self.decisions_path, pandas.DataFrame(rows))
            self.recorded = decisions_file.decided(decisions_file.read_all(self.decisions_path))
        self.message.value = (f"recorded {html.escape(self._said(decision, label))} for {len(rows)} picture(s); "
                              f"re-run the cleaning cell to apply it")
        self._show_status()

    @staticmethod
    def _said(decision: str, label: str) -> str:
        return f"relabel to {label}" if decision == "relabel" else decision

    def _decided(self, item: Item) -> str:
        if item.sha256 not in self.recorded.index:
            return ""
        return self._said(*self.recorded.loc[item.sha256, ["decision", "label"]])

    def _status(self, items) -> str:
        said = {self._decided(item) for item in items} - {""}
        if not said:
            return "not decided"
        left = sum(not self._decided(item) for item in items)
        return "decided: " + ", ".join(sorted(said)) + (f" ({left} not decided)" if left else "")

    def _show_status(self) -> None:
        for card in self.cards:
            card.status.value = f"<small>{html.escape(self._status(card.items))}</small>"

    def _thumbnail(self, path) -> tuple:
        if path not in self._thumbnails:
            self._thumbnails[path] = thumbnail(path, self.thumb)
        return self._thumbnails[path]

    def _html(self, value="", layout="plain") -> ipywidgets.HTML:
        return ipywidgets.HTML(value, layout=self._layouts[layout], style=self._styles["html"])

    def _box(self, kind, children, layout="plain") -> ipywidgets.Box:
        return kind(children, layout=self._layouts[layout])

    def _card(self, items, group="") -> Card:
        relabel_to = ipywidgets.Dropdown(options=self.classes, layout=self._layouts["auto"],
                                         style=self._styles["dropdown"])
        if items[0].suggested in self.classes:
            relabel_to.value = items[0].suggested
        buttons = {decision: ipywidgets.Button(description=word + (" all" if group else ""),
                                               disabled=decision == "relabel" and not self.classes,
                                               layout=self._layouts["auto"], style=self._styles["button"])
                   for decision, word in WORDS.items()}
        box = self._box(ipywidgets.VBox, [self._box(ipywidgets.HBox, [buttons["keep"], buttons["drop"]]),
                                          self._box(ipywidgets.HBox, [buttons["relabel"], relabel_to])])
        card = Card(tuple(items), group, buttons, relabel_to, self._html(), box)
        for decision, button in buttons.items():
            button.on_click(lambda _, decision=decision: self.decide(card, decision))
        self.cards.append(card)
        return card

    def _picture(self, item: Item) -> ipywidgets.Box:
        data, facts = self._thumbnail(item.path)
        image = (ipywidgets.Image(value=data, format="jpeg", layout=self._layouts["image"]) if data
                 else self._html(layout="image"))
        card = self._card([item])
        return self._box(ipywidgets.VBox, [image, self._html(_caption(item, facts)), card.status, card.box],
                         "picture")

    def _section(self, title: str, entries) -> ipywidgets.Box:
        shown = []
        for heading, items in entries:
            pictures = [self._picture(item) for item in items]
            if heading is None:
                shown += pictures
                continue
            card = self._card(items, items[0].group)
            shown.append(self._box(ipywidgets.VBox, [self._html(f"<b>{html.escape(heading)}</b>"),
                                                     self._box(ipywidgets.HBox, pictures), card.status, card.box],
                                   "group"))
        return self._box(ipywidgets.VBox, [self._html(f"<h4>{html.escape(title)} ({len(entries)})</h4>"),
                                           self._box(ipywidgets.Box, shown, "wrap")])

    def to_html(self) -> str:
        """The same sections as a static grid, with the decisions recorded so far (no buttons)."""
        parts = []
        for title, entries in self.sections:
            parts.append(f"<h4>{html.escape(title)} ({len(entries)})</h4><div style='display:flex;flex-wrap:wrap'>")
            for heading, items in entries:
                figures = "".join(self._figure(item) for item in items)
                parts.append(figures if heading is None else
                             f"<div style='border:1px solid #ccc;margin:4px;padding:4px'><b>{html.escape(heading)}"
                             f"</b><div style='display:flex'>{figures}</div></div>")
            parts.append("</div>")
        return "".join(parts)

    def _figure(self, item: Item) -> str:
        data, facts = self._thumbnail(item.path)
        image = (f"<img src='data:image/jpeg;base64,{base64.b64encode(data).decode()}' "
                 f"style='max-width:{self.thumb}px;max-height:{self.thumb}px'>" if data else "")
        return (f"<div style='margin:4px;width:{self.thumb}px'>{image}<br>{_caption(item, facts)}<br>"
                f"<small>{html.escape(self._status([item]))}</small></div>")

    def __repr__(self) -> str:
        pictures = len({item.path for _, entries in self.sections for _, items in entries for item in items})
        return f"review of {pictures} flagged picture(s) in {len(self.sections)} section(s) -> {self.decisions_path}"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return {**self.widget._repr_mimebundle_(**kwargs), "text/html": self.to_html(), "text/plain": repr(self)}


def _caption(item: Item, facts: str) -> str:
    return (f"<small>{html.escape(Path(item.path).name)}<br>{html.escape(item.caption)}<br>"
            f"{html.escape(facts)}</small>")


def review(flags, manifest=None, decisions=None, thumb: int = 112) -> ReviewWidget:
    """The review widget for ``flags`` (``clean(...).flags`` or a flags CSV), appending to ``decisions`` (default
    data/review/decisions.csv).

    A picture can be relabelled to a class of ``manifest`` (the scan the flags came from); without it, to the
    classes the flags name.
    """
    if not isinstance(flags, pandas.DataFrame):
        flags = read_csv(flags, FLAG_COLUMNS, "flags file").map(from_spreadsheet)
    if manifest is not None:
        classes = decisions_file.relabel_targets(manifest)
    else:
        classes = set(flags.loc[flags["flag"] != "unreadable", "label"]) | {
            suggested for suggested in embedding_flags.ranked(flags, "label_issue")["suggested"]}
    return ReviewWidget(flags, decisions or paths.REVIEW / "decisions.csv", classes, thumb)
