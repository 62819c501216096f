"""One synthetic pathology report: sections, focus sentences, distractors, truth.

:class:`ReportWriter` writes a report around the focus sentences that carry the
evidence of its codes, with distractors (history of other diseases,
differential diagnoses, negated findings); all randomness comes from the
report's own generator, so a report depends only on its seed.
"""

from __future__ import annotations

import bisect
import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from hiericd_core import synth_vocab as V
from hiericd_core.synth_codes import CodeEntry, Pool

if TYPE_CHECKING:
    from hiericd_core.synth import SynthConfig

__all__ = ["Mention", "ReportWriter", "Sentence", "SynthReport"]

Span = tuple[int, int]


@dataclass
class Mention:
    code: str
    frags: tuple[Span, ...]
    sent: int = -1
    kind: str = "focus"  # focus / history / differential / negated
    rfv_dep: bool = False
    pair: bool = False
    entry: CodeEntry | None = None


@dataclass
class Sentence:
    text: str
    anns: list[Mention] = field(default_factory=list)  # frags relative to the sentence
    removable: bool = True


@dataclass
class SynthReport:
    rid: str
    text: str
    meta: dict[str, str]
    truth: list[Mention]
    distractors: list[Mention]
    sentences: list[Span]
    n_sentences: int


_SLOT = re.compile(r"\{(\w+)\}")
#: a disease name a pathologist would write as "negative for ...": no qualifier after a comma, not a
#: chapter-like group ("diseases of appendix", "signs and symptoms in breast")
_NEGATABLE = re.compile(r"[^,;]+")
_VAGUE = re.compile(r"\b(diseases? of|disorders?|signs|symptoms|other|unspecified|findings|conditions?)\b", re.I)


@lru_cache(maxsize=512)
def _tokens(template: str) -> tuple[tuple[bool, str], ...]:
    out: list[tuple[bool, str]] = []
    pos = 0
    for match in _SLOT.finditer(template):
        if match.start() > pos:
            out.append((False, template[pos:match.start()]))
        out.append((True, match.group(1)))
        pos = match.end()
    if pos < len(template):
        out.append((False, template[pos:]))
    return tuple(out)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _render(template: str, values: dict[str, str]) -> tuple[str, dict[str, Span]]:
    parts: list[str] = []
    spans: dict[str, Span] = {}
    pos = 0
    for is_slot, token in _tokens(template):
        if is_slot:
            value = values.get(token)
            if value is None:
                low = values.get(token[:1].lower() + token[1:], "")
                value = _cap(low)
            spans[token] = (pos, pos + len(value))
        else:
            value = token
        parts.append(value)
        pos += len(value)
    return "".join(parts), spans


def _evidence(spans: dict[str, Span], spec) -> tuple[Span, ...]:
    return tuple((spans[a][0], spans[b][1]) for a, b in spec)


class ReportWriter:
    """Writes one report; all randomness from the report's own generator."""

    def __init__(self, pool: Pool, cfg: SynthConfig, rng: random.Random, round_day: date):
        self.pool, self.cfg, self.rng, self.round_day = pool, cfg, rng, round_day

    # -- sampling -----------------------------------------------------------

    def draw(self, exclude: set[str], organ: str | None = None) -> CodeEntry:
        rng = self.rng
        if organ is not None and organ in self.pool.by_organ:
            ids, cum = self.pool.by_organ[organ]
        else:
            ids, cum = None, self.pool.cum
        for _ in range(50):
            k = bisect.bisect_left(cum, rng.random() * cum[-1])
            entry = self.pool.entries[ids[k] if ids is not None else k]
            if entry.code not in exclude:
                return entry
        for entry in self.pool.entries:  # pragma: no cover - tiny organ exhausted
            if entry.code not in exclude:
                return entry
        raise RuntimeError("code pool exhausted")

    def n_codes(self) -> int:
        r = self.rng.random() * sum(self.cfg.codes_per_report)
        acc = 0.0
        for k, share in enumerate(self.cfg.codes_per_report):
            acc += share
            if r < acc:
                return k + 1
        return len(self.cfg.codes_per_report)

    def size(self) -> str:
        return f"{self.rng.uniform(0.2, 4.5):.1f}"

    def dims(self) -> str:
        a = self.rng.uniform(0.3, 6.0)
        return f"{a:.1f} x {a * self.rng.uniform(0.4, 1.0):.1f} x {a * self.rng.uniform(0.1, 0.6):.1f}"

    def fill(self, text: str) -> str:
        rng = self.rng
        return (text.replace("{size}", self.size()).replace("{dims}", self.dims())
                .replace("{n}", str(rng.randint(2, 6))).replace("{size2}", f"{rng.uniform(0.1, 1.5):.1f}"))

    def mods(self, entry: CodeEntry, force: bool = False) -> str:
        rng = self.rng
        if not force and rng.random() >= self.cfg.mods_rate:
            return ""
        spec = V.ORGANS[entry.organ]["mods"]
        if entry.behavior in ("malignant", "secondary"):
            options = spec.get("malignant") or ["measuring {size} cm", "see comment"]
        elif entry.behavior in ("benign", "insitu", "uncertain"):
            options = spec.get("benign") or ["measuring {size} cm", "see comment"]
        else:
            options = spec.get("other") or V.GENERIC_MODS_OTHER
        return ", " + self.fill(rng.choice(options))

    def morph(self, entry: CodeEntry, upper: bool) -> str:
        m = self.rng.choice(entry.morphs)
        return m.upper() if upper else m

    # -- sentences ------------------------------------------------------------

    def focus(self, entries: list[CodeEntry], site: str, label: str, proc: str, rfv_dep: bool, prose: bool,
              upper: bool) -> Sentence:
        rng, cfg = self.rng, self.cfg
        first = entries[0]
        organ = V.ORGANS[first.organ]["label"]
        values = {"P": label, "organ": organ.lower(), "Organ": organ, "proc": proc}
        has_site = bool(site) and not rfv_dep
        values["site"] = site
        m = self.morph(first, upper)
        values["m"], values["M"] = m, _cap(m)
        if len(entries) == 2:
            second = entries[1]
            values["m2"] = self.morph(second, False)
            values["site2"] = rng.choice(second.sites) or V.ORGANS[second.organ]["label"].lower()
            if has_site:
                template, ev1, ev2 = rng.choice(V.FOCUS_PAIR)
            else:
                template, ev1, ev2 = rng.choice(V.FOCUS_PAIR_NOSITE)
            values["mods"] = self.mods(first)
            text, spans = _render(template, values)
            return Sentence(text, [
                Mention(first.code, _evidence(spans, ev1), pair=True, entry=first),
                Mention(second.code, _evidence(spans, ev2), pair=True, entry=second),
            ], removable=False)
        if prose:
            choices = V.FOCUS_PROSE_SITE if has_site else V.FOCUS_PROSE_NOSITE
        elif has_site and rng.random() < cfg.discontinuous_rate:
            choices = V.FOCUS_SITE_DISC
        elif has_site:
            choices = V.FOCUS_SITE
        else:
            choices = V.FOCUS_NOSITE
        template, ev = rng.choice(choices)
        values["mods"] = self.mods(first, force="{M}{mods}, {site}" in template)
        text, spans = _render(template, values)
        return Sentence(text, [Mention(first.code, _evidence(spans, ev), rfv_dep=rfv_dep, entry=first)],
                     removable=False)

    def negate_inside(self, sent: Sentence, organ: str, taken: set[str]) -> None:
        """Put a negated disease of ``organ`` (not one of the report's codes) before the sentence's full stop."""
        if not sent.text.endswith("."):  # pragma: no cover - every focus template ends with one
            return
        for _ in range(5):
            other = self.draw(taken, organ)
            names = [m for m in other.morphs if _NEGATABLE.fullmatch(m) and not _VAGUE.search(m)]
            if names:
                break
        else:
            return
        clause, spans = _render(self.rng.choice(V.FOCUS_NEGATIONS), {"neg": self.rng.choice(names)})
        start = len(sent.text) - 1
        span = spans["neg"]  # every FOCUS_NEGATIONS template writes the name in lower case
        sent.text = sent.text[:start] + clause + "."
        sent.anns.append(Mention(other.code, ((start + span[0], start + span[1]),), kind="negated", entry=other))

    def disease_mention(self, templates, templates_nosite, entry: CodeEntry, kind: str, extra=None) -> Sentence:
        rng = self.rng
        values = {"m": rng.choice(entry.morphs), "site": rng.choice(entry.sites),
                  "hproc": rng.choice(V.ORGANS[entry.organ]["history_procs"]),
                  "year": str(self.round_day.year - rng.randint(1, 15))}
        values["M"] = _cap(values["m"])
        values.update(extra or {})
        if entry.site and "{site}" in templates[0]:
            template = rng.choice(templates)
        else:
            template = rng.choice(templates_nosite)
        text, spans = _render(template, values)
        first = "M" if "M" in spans else "m"
        last = "site" if "site" in spans else first
        return Sentence(text, [Mention(entry.code, ((spans[first][0], spans[last][1]),), kind=kind, entry=entry)])

    # -- the report -------------------------------------------------------------

    def report(self, rid: str) -> SynthReport:
        rng, cfg = self.rng, self.cfg
        n = self.n_codes()
        codes: list[CodeEntry] = [self.draw(set())]
        taken = {codes[0].code}
        while len(codes) < n:
            organ = codes[0].organ if rng.random() < cfg.related_code_rate else None
            entry = self.draw(taken, organ)
            codes.append(entry)
            taken.add(entry.code)
        # parts: one code each, or the first two sharing a sentence
        groups: list[list[CodeEntry]] = [[c] for c in codes]
        mates = [j for j in range(1, n) if codes[j].organ == codes[0].organ]
        if mates and rng.random() < cfg.two_code_sentence_rate:
            j = mates[0]
            groups = [[codes[0], codes[j]]] + [[c] for k, c in enumerate(codes[1:], start=1) if k != j]
        primary = codes[0]
        rfv_dep = len(groups[0]) == 1 and primary.rfv_eligible and rng.random() < cfg.rfv_only_rate
        upper = rng.random() < cfg.uppercase_diagnosis_rate
        multi = len(groups) > 1
        parts = []
        for i, group in enumerate(groups):
            organ = V.ORGANS[group[0].organ]
            parts.append(dict(
                L=chr(ord("A") + i), P=f"{chr(ord('A') + i)}. " if multi else "", entries=group,
                proc=rng.choice(organ["procs"]), organ=organ, rfv_dep=rfv_dep and i == 0,
                site=rng.choice(group[0].sites),
                prose=rng.random() < cfg.prose_focus_rate,
            ))
        pspec = V.ORGANS[primary.organ]
        # reason for visit
        primary_site = parts[0]["site"]
        if rfv_dep or (primary_site and rng.random() < cfg.rfv_states_site_rate):
            rfv = _cap(rng.choice(pspec["rfv"]).replace("{site}", primary_site))
        else:
            rfv = rng.choice(pspec["rfv_plain"])
        female = {"breast", "uterus", "cervix", "ovary", "vulva"}
        male = {"prostate", "testis"}
        sex = "female" if primary.organ in female else "male" if primary.organ in male else rng.choice(
            ("female", "male"))
        age = rng.randint(*(cfg.malignant_age_range if primary.behavior == "malignant" else cfg.age_range))

        sections: dict[str, list[Sentence]] = {k: [] for k in ("specimen", "history", "gross", "micro", "final",
                                                            "comment")}
        for part in parts:
            entry = part["entries"][0]
            vals = {"P": part["P"], "Organ": part["organ"]["label"], "proc": part["proc"], "site": part["site"]}
            if part["site"] and not part["rfv_dep"]:
                template = rng.choice(V.SPECIMEN_LINES)
            else:
                template = rng.choice(V.SPECIMEN_LINES_NOSITE)
            sections["specimen"].append(Sentence(_render(template, vals)[0], removable=False))
        # clinical history
        opener = rng.choice(V.HISTORY_OPENERS)
        presenting = rng.choice(pspec["presenting"])
        hist = _render(opener, {"age": str(age), "Age": str(age), "sex": sex, "presenting": presenting})[0]
        sections["history"].append(Sentence(hist, removable=False))
        if not rfv_dep and rng.random() < cfg.history_restates_rfv_rate:
            sections["history"].append(Sentence(rng.choice(V.HISTORY_RFV).replace("{rfv}", rfv)))
        k = 0
        while k < cfg.max_history_distractors and rng.random() < cfg.history_distractor_rate:
            other = self.draw(taken)
            sections["history"].append(self.disease_mention(
                V.HISTORY_DISTRACTORS, V.HISTORY_DISTRACTORS_NOSITE, other, "history"))
            k += 1
        if rng.random() < cfg.history_filler_rate:
            sections["history"].append(Sentence(rng.choice(V.HISTORY_FILLERS)))
        # gross
        for part in parts:
            entry = part["entries"][0]
            label = part["organ"]["label"].lower() if part["rfv_dep"] or not part["site"] else part["site"]
            gross = rng.choice(V.GROSS_TEMPLATES)
            gross = self.fill(gross.replace("{tissue}", rng.choice(part["organ"]["tissue"])))
            gross = gross.replace("{Pp}", f"Part {part['L']}" if multi else "The specimen").replace(
                "{label}", label)
            sections["gross"].append(Sentence(gross, removable=len(parts) > 3))
            for _ in range(rng.randint(0, 2 if len(parts) <= 2 else 1)):
                filler = rng.choice(V.GROSS_FILLERS)
                filler = self.fill(filler.replace("{L}", part["L"]).replace("{k}", str(rng.randint(2, 6)))
                                   .replace("{color}", rng.choice(V.INK_COLORS)))
                sections["gross"].append(Sentence(filler))
        # microscopic
        if rng.random() < cfg.micro_rate:
            for part in parts:
                entry = part["entries"][0]
                cls = ("malignant" if entry.behavior in ("malignant", "secondary")
                       else "benign" if entry.behavior in ("benign", "insitu", "uncertain") else "other")
                micro = part["organ"]["micro"].get(cls) or V.GENERIC_MICRO[cls]
                used = {sent.text for sent in sections["micro"]}
                for sentence in rng.sample(micro, min(len(micro), rng.randint(1, 2))):
                    if sentence not in used:
                        sections["micro"].append(Sentence(sentence))
        else:
            sections["micro"].append(Sentence(rng.choice(V.MICRO_FILLERS)))
        # final diagnosis (focus sentences) and comment
        for part in parts:
            sent = self.focus(part["entries"], part["site"], part["P"], part["proc"], part["rfv_dep"],
                              part["prose"], upper)
            if len(part["entries"]) == 1 and cfg.focus_negation_rate and rng.random() < cfg.focus_negation_rate:
                self.negate_inside(sent, part["entries"][0].organ, taken)
            if part["prose"]:
                see = f"{part['P']}{part['organ']['label']}, {part['proc']}: see comment."
                sections["final"].append(Sentence(see, removable=False))
                sections["comment" if rng.random() < cfg.prose_in_comment_rate else "micro"].append(sent)
            else:
                sections["final"].append(sent)
            if rng.random() < cfg.negated_finding_rate:
                neg = rng.choice(part["organ"]["neg"])
                template = rng.choice(V.NEGATED_TEMPLATES)
                text = _render(template, {"neg": neg})[0]
                sections["final" if rng.random() < cfg.negated_in_final_rate else "micro"].append(Sentence(text))
            if rng.random() < cfg.negated_disease_rate:
                other = self.draw(taken, part["entries"][0].organ)
                template = rng.choice(V.NEGATED_TEMPLATES)
                values = {"neg": other.morphs[0]}
                text, spans = _render(template, values)
                span = spans["neg"] if "neg" in spans else spans["Neg"]
                sections["final"].append(Sentence(text, [Mention(other.code, (span,), kind="negated", entry=other)]))
        if rng.random() < cfg.differential_rate:
            other = self.draw(taken, primary.organ)
            sections["comment"].append(self.disease_mention(
                V.DIFFERENTIAL_DISTRACTORS, V.DIFFERENTIAL_DISTRACTORS, other, "differential"))
        if rng.random() < cfg.comment_rate:
            for template in rng.sample(V.COMMENT_FILLERS, rng.randint(1, 2)):
                when = self.round_day - timedelta(days=rng.randint(0, 30))
                text = template.replace("{name}", rng.choice(V.PATHOLOGIST_NAMES)).replace(
                    "{date}", when.strftime("%m/%d/%Y"))
                sections["comment"].append(Sentence(text))

        # sentence budget
        order = ["specimen", "history", "gross", "micro", "final", "comment"]
        if rng.random() < cfg.final_first_rate:
            order = ["specimen", "final", "comment", "history", "gross", "micro"]
        total = sum(len(v) for v in sections.values())
        while total > cfg.max_sentences:
            removable = [(name, i) for name in order for i, s in enumerate(sections[name]) if s.removable]
            if not removable:
                break
            name, i = removable[rng.randrange(len(removable))]
            del sections[name][i]
            total -= 1
        while total < cfg.min_sentences:
            sections["comment"].append(Sentence(rng.choice(V.COMMENT_FILLERS).replace(
                "{name}", rng.choice(V.PATHOLOGIST_NAMES)).replace("{date}", self.round_day.strftime("%m/%d/%Y"))))
            total += 1

        # layout
        chunks: list[str] = []
        pos = 0
        truth: list[Mention] = []
        distractors: list[Mention] = []
        sentence_spans: list[Span] = []
        for name in order:
            sents = sections[name]
            if not sents:
                continue
            header = rng.choice(V.SECTION_HEADERS[name])
            if chunks:
                chunks.append("\n\n")
                pos += 2
            chunks.append(header + "\n")
            pos += len(header) + 1
            line_per_sentence = name in ("specimen", "final") or rng.random() < cfg.one_sentence_per_line_rate
            for j, sent in enumerate(sents):
                if j:
                    sep = "\n" if line_per_sentence else " "
                    chunks.append(sep)
                    pos += 1
                start = pos
                chunks.append(sent.text)
                pos += len(sent.text)
                index = len(sentence_spans)
                sentence_spans.append((start, pos))
                for ann in sent.anns:
                    ann.frags = tuple((start + s, start + e) for s, e in ann.frags)
                    ann.sent = index
                    (truth if ann.kind == "focus" else distractors).append(ann)
        text = "".join(chunks) + "\n"
        specimen = "; ".join(f"{p['organ']['label']}, {p['proc']}" for p in parts)
        proc_day = self.round_day - timedelta(days=rng.randint(1, 365))
        meta = {"report_id": rid, "reason_for_visit": rfv, "specimen": specimen,
                "procedure_date": proc_day.isoformat(), "patient_age": str(age), "patient_sex": sex,
                "department": pspec["dept"]}
        return SynthReport(rid, text, meta, truth, distractors, sentence_spans, len(sentence_spans))
