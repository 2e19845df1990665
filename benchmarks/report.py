"""Render docs/benchmarks.md (and README.md's headline table) from the benchmark result files.

Usage:
    python benchmarks/report.py            # write docs/benchmarks.md and README.md's block
    python benchmarks/report.py --check    # exit 1 if either differs from what the files give
    python benchmarks/report.py --results /tmp/results --out /tmp/benchmarks.md --readme none

The page holds nothing typed by hand: every measured figure comes from one result file of
``benchmarks/results/`` (written by a script's ``--json``, see ``benchmarks/results_io.py``),
every quoted figure of another tool from ``benchmarks/reference_figures.json``. Each table is
headed by the command, commit, machine and date of the run it shows. A benchmark without a
result file gets a line saying so and the command that writes it. The output depends on the
files only (fixed number formats, fixed order), so ``--check`` and
``tests/test_benchmark_page.py`` can tell when the page is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
REFERENCE_FIGURES = HERE / "reference_figures.json"
PAGE = REPO / "docs" / "benchmarks.md"
README = REPO / "README.md"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"

# The command that writes each result file, at the size the page reports.
COMMANDS = {
    "stage1": "python benchmarks/stage1.py --sizes 256 512 --frames 1000 "
              "--presets quality balanced fast --rss-growth --extra 512x500:fast "
              "--json benchmarks/results/stage1.json",
    "stage1_qc": "python benchmarks/stage1.py --qc-compare --sizes 256 --frames 500 "
                 "--presets balanced --repeats 2 --json benchmarks/results/stage1_qc.json",
    "optical_flow": "python benchmarks/optical_flow.py --sizes 256 512 --repeats 5 "
                    "--json benchmarks/results/optical_flow.json",
    "accuracy": "python benchmarks/accuracy.py --json benchmarks/results/accuracy.json",
    "accuracy_1024": "python benchmarks/accuracy.py --models smooth smooth_wide --photons 10 "
                     "100 --presets balanced --sizes 1024 --no-quote "
                     "--json benchmarks/results/accuracy_1024.json",
    "suite2p": "python benchmarks/suite2p_baseline.py --models smooth local local_patches "
               "jitter real --photons 3 10 100 1000 --json benchmarks/results/suite2p.json",
    "accuracy_session": "python benchmarks/accuracy.py --session "
                        "--json benchmarks/results/accuracy_session.json",
    "mixed_brightness_smooth": "python benchmarks/mixed_brightness.py "
                               "--json benchmarks/results/mixed_brightness_smooth.json",
    "mixed_brightness_local_patches": "python benchmarks/mixed_brightness.py --model "
                                      "local_patches --photons 10 100 1000 "
                                      "--json benchmarks/results/mixed_brightness_local_patches"
                                      ".json",
    "noise_model": "python benchmarks/noise_model.py --json benchmarks/results/noise_model.json",
    "resume_check": "python benchmarks/resume_check.py "
                    "--json benchmarks/results/resume_check.json",
    "fault_injection": "python benchmarks/fault_injection.py "
                       "--json benchmarks/results/fault_injection.json",
    "segments": "python benchmarks/segments.py --json benchmarks/results/segments.json",
    "stage1_workers": "python benchmarks/stage1.py --workers-compare --sizes 256 512 "
                      "--frames 500 --presets balanced --repeats 4 "
                      "--json benchmarks/results/stage1_workers.json",
    "job_overhead": "python benchmarks/job_overhead.py --rounds 2 "
                    "--json benchmarks/results/job_overhead.json",
    "recording_profile": "python benchmarks/recording_profile.py "
                         "--json benchmarks/results/recording_profile.json",
    "session_rois": "python benchmarks/session_rois.py "
                    "--json benchmarks/results/session_rois.json",
    "multifile": "python benchmarks/multifile.py --json benchmarks/results/multifile.json",
}


# --------------------------------------------------------------------------- formatting
def num(value, digits: int, unit: str = "") -> str:
    """Fixed-point text of a figure; an absent one (None, NaN written as null) is a dash."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}{unit}"


def photons_text(photons) -> str:
    return "own noise" if photons is None else f"{photons:g}"


def epe_text(mean, p95) -> str:
    return f"{num(mean, 3)} ({num(p95, 2)})"


def shape_text(size, frames) -> str:
    """``256² x 200`` for a square frame size (an int or [h, w]), ``52x120 x 200`` otherwise."""
    h, w = (size, size) if isinstance(size, int) else size
    return f"{h}² x {frames}" if h == w else f"{h}x{w} x {frames}"


def commit_text(meta: dict) -> str:
    git = meta.get("git", {})
    text = (git.get("commit") or "unknown")[:10]
    return text + (" with uncommitted changes" if git.get("dirty") else "")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def run_header(doc: dict) -> str:
    """Which run a table shows: command, commit, machine, load at start, date."""
    meta = doc.get("meta", {})
    git = meta.get("git", {})
    commit = commit_text(meta)
    library = meta.get("pyflowreg", {})
    if library.get("commit") and library.get("commit") != git.get("commit"):
        commit += f"; library of {library['commit'][:10]}"
    machine = meta.get("machine", {})
    load = machine.get("loadavg_start") or [None] * 3
    loads = " / ".join(num(x, 2) for x in load)
    return (f"Run: `{doc.get('command', '?')}`; commit {commit}; "
            f"{machine.get('cpu_model') or 'unknown CPU'}, {machine.get('logical_cores')} "
            f"logical cores, load average {loads} (1 / 5 / 15 min) at start; "
            f"{meta.get('date', 'undated')}.")


def absent(name: str) -> str:
    return (f"No result file `benchmarks/results/{name}.json` yet; it is written by\n"
            f"`{COMMANDS[name]}`.")


def section(heading: str, intro: str, docs: dict, name: str, body, level: int = 2) -> str:
    """A page section: its heading, what the script measures, then ``body(result)`` as lines,
    or where the missing result file comes from."""
    doc = docs.get(name)
    lines = ["#" * level + f" {heading}", "", intro, ""]
    lines += [absent(name)] if doc is None else body(doc)
    return "\n".join(lines)


def load_results(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def load_reference(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["entries"]


def quoted_source(entries: list[dict]) -> str:
    return "; ".join(sorted({e["source"] for e in entries}))


# --------------------------------------------------------------------------- sections
STAGE1_INTRO = (
    "`benchmarks/stage1.py` runs `compensate_recording` on a synthetic uint16 recording "
    "(rigid motion up to 6 px plus 1.5 px non-rigid motion, photon noise) with 2 workers, "
    "each run in a fresh process after a warm-up that compiles numba's kernels. "
    "Frames/s is wall-clock time over everything (reading, noise fit, reference, choice "
    "of α, correction, quality control, writing); CPU-s/frame counts all threads; "
    "\"reference\" is the time spent building the reference and its share of the wall "
    "time; \"α s\" the time spent choosing the smoothness weight and \"α\" the weight "
    "chosen; peak RSS is the process's maximum resident memory."
)
QC_COST_INTRO = (
    "`benchmarks/stage1.py --qc-compare` runs the same recording with quality control on "
    "and off in alternating order (on, off, off, on, ...) so that a drift of the "
    "machine's load weighs on both alike."
)
OPTICAL_FLOW_INTRO = (
    "`benchmarks/optical_flow.py` registers a synthetic pair with a known smooth field "
    "(up to 6 px) per frame size and preset and gives frames/s, CPU-s per frame and the "
    "mean end-point error (EPE) against the true field. \"1 thread\" and \"2 threads\" "
    "are numba threads splitting one image (one `get_displacement` call per pair, "
    "reference pyramid included); \"2 workers\" registers frames against one reference "
    "on two threads, as Stage 1 does."
)


def stage1_lines(doc: dict) -> list[str]:
    return [run_header(doc), "", table(
        ["recording", "preset", "frames/s", "CPU-s/frame", "reference, s (%)", "α s", "α",
         "peak RSS, MB"],
        [[f"{r['size']}² x {r['frames']}", r["preset"], num(r["fps"], 2),
          num(r["cpu_s_per_frame"], 4),
          f"{num(r['reference_s'], 1)} ({num(100 * r['reference_share'], 0)} %)",
          num(r["alpha_selection_s"], 1), "—" if r["alpha"] is None else f"{r['alpha']:g}",
          num(r["peak_rss_mb"], 0)] for r in doc["results"]["runs"]])]


def qc_cost_lines(doc: dict) -> list[str]:
    return [run_header(doc), "", table(
        ["recording", "preset", "frames/s on / off", "ratio on/off", "CPU-s/frame on / off",
         "ratio on/off"],
        [[f"{s['size']}² x {s['frames']}", s["preset"],
          f"{num(s['fps_qc_on'], 2)} / {num(s['fps_qc_off'], 2)}",
          num(s["fps_ratio_on_off"], 3),
          f"{num(s['cpu_s_per_frame_qc_on'], 4)} / {num(s['cpu_s_per_frame_qc_off'], 4)}",
          num(s["cpu_ratio_on_off"], 3)] for s in doc["results"]["summaries"]])]


def section_stage1(docs: dict, reference: list[dict]) -> str:
    measured = docs["stage1"]["results"]["runs"] if "stage1" in docs else []
    entries = [e for e in reference if e["benchmark"] == "stage1"]
    rows = []
    for e in entries:
        i = e["input"]
        match = next((r for r in measured if (r["size"], r["frames"], r["preset"])
                      == (i["size"], i["frames"], i["preset"])), None)
        other = (f"{e['figures']['peak_memory_gb']:g} GB peak memory"
                 if "peak_memory_gb" in e["figures"] else "")
        rows.append([f"{i['size']}² x {i['frames']}", i["preset"], e["tool"],
                     f"{e['figures']['fps']:g}", other or "—",
                     num(match["fps"], 2) if match else "not run",
                     f"{match['fps'] / e['figures']['fps']:.1f}x" if match else "—"])
    quoted = ["Quoted figures of another tool on whole recordings "
              f"({quoted_source(entries)}). The ratio is given only where a run above has the "
              "same frame size, frame count and preset.", "",
              table(["recording", "preset", "tool", "frames/s (quoted)", "other (quoted)",
                     "frames/s measured here", "ratio"], rows)]
    qc_cost = section("Cost of quality control", QC_COST_INTRO, docs, "stage1_qc",
                      qc_cost_lines, level=3)
    return "\n\n".join([section("Stage 1 speed and memory", STAGE1_INTRO, docs, "stage1",
                                 stage1_lines), "\n".join(quoted), qc_cost])


def optical_flow_lines(doc: dict) -> list[str]:
    res = doc["results"]
    pairs = res["pairs"]
    cases = list(dict.fromkeys((p["size"], p["preset"], p["min_level"]) for p in pairs))
    modes = list(dict.fromkeys(p["mode"] for p in pairs))
    by = {(p["size"], p["preset"], p["mode"]): p for p in pairs}
    rows = []
    for size, preset, level in cases:
        got = [by.get((size, preset, m)) for m in modes]
        rows.append([f"{size}²", preset, str(level)]
                    + [num(p["fps"], 1) if p else "—" for p in got]
                    + [" / ".join(num(p["cpu_s_per_frame"], 4) if p else "—" for p in got),
                       num(got[0]["epe"], 3) if got[0] else "—"])
    first = res["first_call"]
    return [run_header(doc), "",
            f"First call in a fresh process: {num(first['cold_cache_s'], 1)} s compiling "
            f"from a cold numba cache, {num(first['warm_cache_s'], 2)} s with a warm one.",
            "", table(["size", "preset", "min level"] + [f"{m}, frames/s" for m in modes]
                      + [f"CPU-s/frame ({' / '.join(modes)})", "EPE, px"], rows)]


def section_optical_flow(docs: dict, reference: list[dict]) -> str:
    pairs = docs["optical_flow"]["results"]["pairs"] if "optical_flow" in docs else []
    entries = [e for e in reference if e["benchmark"] == "optical_flow"]
    rows = []
    for e in entries:
        i = e["input"]
        got = [p for p in pairs if (p["size"], p["preset"]) == (i["size"], i["preset"])]
        ratios = " / ".join(f"{p['mode']} {p['fps'] / e['figures']['fps']:.1f}x" for p in got)
        rows.append([f"{i['size']}²", i["preset"], e["tool"], f"{e['figures']['fps']:g}",
                     ratios or "not run"])
    quoted = ["Quoted figures of another tool on one frame pair "
              f"({quoted_source(entries)}). Ratios only for the same frame size and preset.", "",
              table(["size", "preset", "tool", "frames/s (quoted)", "measured / quoted"], rows)]
    return "\n\n".join([section("Optical flow, one frame pair", OPTICAL_FLOW_INTRO, docs,
                                 "optical_flow", optical_flow_lines), "\n".join(quoted)])


def _goal(row: dict, goals: list[dict]) -> str:
    for goal in goals:
        # Result files of runs without sizes in their goals hold them for every size.
        if (goal["model"], goal["photons"], goal["preset"]) == (row["model"], row["photons"],
                                                                row["preset"]) \
                and goal.get("size", row["size"][0]) == row["size"][0]:
            met = "met" if row["epe_mean"] <= goal["epe_mean"] else "missed"
            return f"≤ {goal['epe_mean']:.2f}: {met}"
    return ""


def _alpha_text(row: dict) -> str:
    """The smoothness weight of each seed and the path its choice took, e.g. "12 (photon-model)"."""
    pairs = zip(row.get("alpha") or [], row.get("alpha_path") or [], strict=False)
    return ", ".join(f"{a:g} ({p})" for a, p in pairs if a is not None) or "—"


def accuracy_lines(doc: dict) -> list[str]:
    res = doc["results"]
    goals = res.get("goals", [])
    return [run_header(doc), "", table(
        ["model", "photons/unit", "preset", "frames", "EPE mean (p95), px", "offset, px",
         "distortion, px", "mean-image error, % (true fields)", "CPU-s/frame",
         "reference %", "alpha (path of its choice)", "goal"],
        [[r["model"], photons_text(r["photons"]), r["preset"],
          shape_text(r["size"], r["frames"]),
          epe_text(r["epe_mean"], r["epe_p95"]), num(r["offset"], 3),
          num(r["distortion"], 3),
          f"{num(r['image_error'], 2)} ({num(r['image_error_ideal'], 2)})",
          num(r["cpu_s_per_frame"], 4),
          num(None if r["reference_share"] is None else 100 * r["reference_share"], 0),
          _alpha_text(r), _goal(r, goals)] for r in res["cases"]])]


ACCURACY_1024_INTRO = (
    "The same measurement at 1024² (balanced; the synthetic models only), where a frame holds "
    "four times the pixels of the 512 px grid: whether the choice of the smoothness weight "
    "keeps scaling with the frame. No goal is set at this size."
)


def section_accuracy(docs: dict, reference: list[dict]) -> str:
    out = ["## Stage 1 accuracy against ground truth", "",
           "`benchmarks/accuracy.py` writes a synthetic recording per motion model and photon "
           "level (and real tissue moved by known fields: `real`, `real_sima`) as a uint16 "
           "TIFF, runs the real `compensate_recording` with 2 workers and compares the saved "
           "fields with the exact ones. EPE is the end-point error over every frame and every "
           "pixel whose true sample lies inside the frame (mean and 95th percentile); offset is "
           "the norm of the mean error vector (where the reference sits); distortion the mean "
           "norm of the per-pixel time-mean error minus the offset; the mean-image error is the "
           "RMS error of the corrected mean image against the true motion-free mean after a "
           "least-squares gain and offset, in % of the truth's standard deviation, with the "
           "same for frames registered by the true fields in brackets (the floor set by the "
           "frames' own noise); \"reference %\" is the reference's share of Stage 1's wall "
           "time. The goal column holds the accuracy targets (balanced preset, EPE mean).", ""]
    doc = docs.get("accuracy")
    out += [absent("accuracy")] if doc is None else accuracy_lines(doc)
    entries = [e for e in reference if e["benchmark"] == "accuracy"]
    rows = []
    for e in entries:
        i, fig = e["input"], e["figures"]
        case = i["case"] + ("" if i["photons"] is None else f", {i['photons']:g} photons/unit")
        figure = (f"{fig['cpu_s_per_frame']:.3f} CPU-s/frame" if "cpu_s_per_frame" in fig else
                  f"{fig['epe_mean']:.2f}" + (f" ({fig['epe_p95']:.2f})" if "epe_p95" in fig
                                                else "") + " px")
        rows.append([case, f"{e['tool']} {e['version']}", i["preset"], figure])
    out += ["", "Quoted figures of held-back sessions, not of these inputs, so without a ratio "
            f"({quoted_source(entries)}); suite2p on these inputs is "
            "measured in the next section.", "",
            table(["case", "tool", "setting", "EPE mean (p95) or CPU time (quoted)"], rows)]
    return "\n".join(out)


def section_suite2p(docs: dict) -> str:
    out = ["## suite2p on the same inputs", "",
           "`benchmarks/suite2p_baseline.py` runs suite2p's nonrigid block registration (CPU, "
           "default registration settings, 128-px blocks or half the frame when smaller) on the "
           "cached inputs of the accuracy benchmark and reads its field off what it does to the "
           "frames; Stage 1 (balanced) runs on the same input in the same invocation. suite2p's "
           "reference is the mean of its best-correlated frames, so its EPE is given plainly, "
           "after removing its constant offset, and relative to its own reference (the most "
           "favourable reading); the ratio is Stage 1's EPE over suite2p's with the offset "
           "removed.", ""]
    doc = docs.get("suite2p")
    if doc is None:
        out.append(absent("suite2p") + " suite2p needs PyTorch and runs in its own environment "
                   "(see the script).")
        return "\n".join(out)
    rows = []
    for r in doc["results"]["rows"]:
        s, b = r["suite2p"], r["balanced"]
        rows.append([s["model"], photons_text(s["photons"]), str(s["block_size"]),
                     epe_text(s["epe_mean_offset_removed"], s["epe_p95_offset_removed"]),
                     num(s["epe_mean"], 3), num(s["epe_mean_own_reference"], 3),
                     epe_text(b["epe_mean"], b["epe_p95"]), num(r["ratio"], 2),
                     f"{num(s['cpu_s_per_frame'], 4)} / {num(b['cpu_s_per_frame'], 4)}"])
    versions = doc.get("meta", {}).get("versions", {})
    out += [run_header(doc) + f" suite2p {versions.get('suite2p', '?')}, "
            f"PyTorch {versions.get('torch', '?')}.", "", table(
                ["model", "photons/unit", "block, px", "suite2p, offset removed: EPE (p95)",
                 "suite2p, plain", "suite2p, own reference", "Stage 1 balanced: EPE (p95)",
                 "ratio", "CPU-s/frame suite2p / Stage 1"], rows)]
    return "\n".join(out)


SESSION_INTRO = (
    "`benchmarks/accuracy.py --session` writes sessions of synthetic recordings moved "
    "against each other (12 px rigid plus 2.5 px non-rigid), runs Stages 1 to 3 "
    "(balanced) and compares each recording's field to the reference recording with the "
    "true between-recording flow (mean EPE; in brackets the EPE of the rigid shift "
    "alone and the candidate Stage 2 kept), and the session mask with the true common "
    "field of view (Dice)."
)



def session_lines(doc: dict) -> list[str]:
    rows = [[str(s["seed"]), f"{s['recordings']} x {s['size']}² x {s['frames']}",
             str(s["reference"]),
             "; ".join(f"{a['recording']}: {num(a['epe_mean'], 3)} "
                       f"({num(a['rigid_epe_mean'], 2)}; {a['kept']})"
                       for a in s["alignments"]),
             num(s["dice"], 4)] for s in doc["results"]["sessions"]]
    return [run_header(doc), "", table(
        ["seed", "session", "reference recording",
         "Stage 2 EPE per recording, px (rigid shift alone; kept)", "mask Dice"], rows)]


NOISE_INTRO = (
    "`benchmarks/noise_model.py` stores synthetic recordings as detectors would (k counts "
    "per photon, a dark offset; an offset of 0 clips the read noise of 5 photons at the "
    "floor) and fits Stage 1's noise model to them (16 consecutive frame pairs of 200 "
    "frames). Each cell gives the fitted gain against the true k and the answer the fit "
    "gives: `photon` (a significant shot-noise line: the noise-stabilising transform is "
    "used), `line` (a line without significant gain) or `bins` (only the variances "
    "measured per brightness bin: the choice of the smoothness weight follows them and "
    "reports a fallback). The real recordings have no known gain."
)



def noise_lines(doc: dict) -> list[str]:
    cases = doc["results"]["cases"]
    detectors = list(dict.fromkeys((c["counts_per_photon"], c["offset"]) for c in cases))
    keys = list(dict.fromkeys((c["model"], c["photons"], c["size"]) for c in cases))
    by_key = {(c["model"], c["photons"], c["size"], c["counts_per_photon"], c["offset"]): c
              for c in cases}

    def cell(case):
        if case is None:
            return "—"
        if case["kind"] in ("bins", "none"):
            return f"no line, {case['kind']}"
        return (f"{case['gain']:.3g} of {case['true_gain']:g} "
                f"({100 * case['gain_relative_error']:+.0f} %), {case['kind']}")

    rows = [[model, photons_text(photons), f"{size}²",
             *(cell(by_key.get((model, photons, size, k, offset))) for k, offset in detectors)]
            for model, photons, size in keys]
    out = [run_header(doc), "", table(
        ["model", "photons/unit", "frame",
         *(f"k {k:g}, offset {offset:g}" + (" (clipped)" if offset == 0 else "")
           for k, offset in detectors)], rows)]
    real = doc["results"].get("real", [])
    if real:
        out += ["", table(["real recording", "frames", "fitted gain (counts per photon)",
                           "intercept", "kind"],
                          [[f"`{r['file']}`", f"{r['frames']} x "
                            f"{'x'.join(map(str, r['frame_shape']))}", num(r["gain"], 3),
                            num(r["intercept"], 1), r["kind"]] for r in real])]
    return out


def section_mixed(docs: dict) -> str:
    out = ["## One configuration for recordings of mixed brightness", "",
           "`benchmarks/mixed_brightness.py` corrects a session holding the same tissue and "
           "motion recorded at several photon levels with one configuration (the preset "
           "alone) and sets each recording's EPE against the same recording corrected with "
           "each fixed smoothness weight α, the best of which is picked with the ground truth, "
           "a choice no lab can make.", ""]
    for name in ("mixed_brightness_smooth", "mixed_brightness_local_patches"):
        doc = docs.get(name)
        out.append(f"### `{name}.json`")
        out.append("")
        if doc is None:
            out += [absent(name), ""]
            continue
        rows = []
        for r in doc["results"]["rows"]:
            fixed = " / ".join(f"{f['alpha']:g}: {num(f['epe_mean'], 3)}"
                               for f in r["epe_mean_fixed_alpha"])
            alpha = ", ".join(f"{a:g}" for a in dict.fromkeys(r["alpha_chosen"]))
            noise = r["noise"]
            rows.append([f"{r['model']} {r['photons']:g}", num(r["epe_mean_one_config"], 3),
                         f"{alpha} ({r['alpha_reason']})",
                         f"gain {noise['gain']:.3g}, r² {noise['r_squared']:.3g}", fixed,
                         f"{r['best_fixed_alpha']:g}: {num(r['epe_mean_best_fixed_alpha'], 3)}",
                         f"{100 * (r['one_config_over_best'] - 1):+.0f} %"])
        out += [run_header(doc), "", table(
            ["recording (photons/unit)", "one configuration: EPE, px", "α chosen (reason)",
             "noise fit", "fixed α: EPE, px", "best α by the truth: EPE", "one config vs best"],
            rows), ""]
    return "\n".join(out).rstrip()


RESUME_INTRO = (
    "`benchmarks/resume_check.py` measures what Stage 1's exact input fingerprint costs: "
    "the resume check of an unchanged recording (size and modification time equal: one "
    "`stat`), the re-hash of a moved or copied recording from the page cache and from "
    "disk, and Stage 1 with the background hash against Stage 1 without it, run "
    "alternately (medians; the CPU-time difference is the robust figure on a shared "
    "machine)."
)



def resume_lines(doc: dict) -> list[str]:
    rc, s1 = doc["results"]["resume_check"], doc["results"]["stage1"]
    rows = [
        ["resume check, unchanged recording", f"{num(rc['unchanged_us'], 0)} µs, any size"],
        ["re-hash, page cache", f"{num(rc['rehash_page_cache_s_per_gib'], 2)} s per GiB "
                                f"({num(rc['rehash_page_cache_mib_per_s'], 0)} MiB/s)"],
        ["re-hash, from disk", f"{num(rc['rehash_disk_s_per_gib'], 2)} s per GiB "
                               f"({num(rc['rehash_disk_mib_per_s'], 0)} MiB/s)"],
        [f"Stage 1 wall time, {s1['size']}² x {s1['frames']} {s1['preset']}, with / without "
         "hash", f"{num(s1['wall_with_hash_s'], 2)} / {num(s1['wall_without_hash_s'], 2)} s "
                 f"({100 * s1['wall_difference_share']:+.1f} %)"],
        ["Stage 1 CPU time, with / without hash",
         f"{num(s1['cpu_with_hash_s'], 2)} / {num(s1['cpu_without_hash_s'], 2)} s "
         f"({100 * s1['cpu_difference_share']:+.1f} %)"],
    ]
    return [run_header(doc) + f" Hashed file {num(rc['file_gib'], 2)} GiB; Stage 1 medians of "
            f"{s1['rounds']} rounds.", "", table(["figure", "value"], rows)]


FAULTS_INTRO = (
    "`benchmarks/fault_injection.py` kills runs with SIGKILL at random moments on a "
    "small synthetic session, recovers them with the documented command and compares "
    "every result file with an uninterrupted run's: the workflow (`snakemake`, aimed at "
    "each rule in turn, recovered with `--rerun-incomplete`), the CLI (rerun as is) and "
    "a Stage 1 array task (rerun as is)."
)



def faults_lines(doc: dict) -> list[str]:
    rows = [[f["face"], str(f["trials"]), str(f["recovered"]), str(f["mismatched"]),
             "—" if f["lock_removed"] is None else str(f["lock_removed"]),
             ", ".join(f"{k} {v}" for k, v in sorted(f["kills"].items())) or "none",
             num(f["seconds"], 0)] for f in doc["results"]["faces"]]
    out = [run_header(doc), "", table(
        ["face", "trials", "recovered", "mismatched", "stale lock removed by the rerun",
         "kills during", "seconds"], rows)]
    failures = [f"- {f['face']}: {x}" for f in doc["results"]["faces"] for x in f["failures"]]
    if failures:
        out += ["", "Failures:", "", *failures]
    return out


SEGMENTS_INTRO = (
    "`benchmarks/segments.py` corrects one long recording (synthetic uint16, rigid motion up "
    "to 6 px and 1.5 px non-rigid, photon noise) once unsplit and once with `segment_frames`, "
    "every job in a fresh process with 2 threads, one after the other. A job's CPU time "
    "includes its interpreter start and imports; the wall times on N nodes follow from the "
    "per-job figures (preparation, the segments spread over the nodes, the join)."
)


def segments_lines(doc: dict) -> list[str]:
    r = doc["results"]
    jobs = [job for round_ in r["rounds"] for job in round_["split_jobs"]]
    segment_jobs = [job for job in jobs if job["step"].startswith("segment")]
    unsplit = [round_["unsplit"] for round_ in r["rounds"]]
    diff = r["largest_difference"]

    def step_cpu(step: str) -> float:
        return min(job["cpu"] for job in jobs if job["step"] == step)

    rows = [
        ["recording", f"{r['size']}² x {r['frames']} frames, {r['preset']}; "
                      f"{r['segments']} segments of {r['segment_frames']} frames"],
        ["CPU, unsplit", f"{num(r['unsplit_cpu_s'], 0)} s "
                         f"({num(r['unsplit_cpu_s'] / r['frames'], 4)} per frame)"],
        ["CPU, split (all jobs)", f"{num(r['split_cpu_s'], 0)} s"],
        [f"overhead of splitting, mean of {len(r['rounds'])} round(s)",
         f"{100 * r['cpu_overhead']:+.1f} % (rounds: "
         + ", ".join(f"{100 * x['cpu_overhead']:+.1f} %" for x in r["rounds"]) + ")"],
        ["CPU per job, split", f"preparation {num(step_cpu('prepare'), 1)} s, segments "
                               f"{num(min(j['cpu'] for j in segment_jobs), 1)}-"
                               f"{num(max(j['cpu'] for j in segment_jobs), 1)} s, join "
                               f"{num(step_cpu('join'), 1)} s"],
        ["peak RSS per job", f"unsplit {num(max(u['peak_rss_mb'] for u in unsplit), 0)} MB; "
                             f"split {num(min(j['peak_rss_mb'] for j in jobs), 0)}-"
                             f"{num(max(j['peak_rss_mb'] for j in jobs), 0)} MB"],
        ["largest difference, flows", f"{diff['flow_px']:.3g} px"],
        ["largest difference, frames", f"{diff['frame_fraction_of_range']:.3g} of the data "
                                       "range; valid masks "
                                       + ("equal" if diff["valid_masks_equal"] else "differ")],
        ["wall time, unsplit (last round)", f"{num(r['unsplit_wall_s'], 0)} s"],
        *[[f"wall time implied on {n} node(s)",
           f"{num(wall, 0)} s ({r['unsplit_wall_s'] / wall:.1f}x faster)"]
          for n, wall in r["implied_wall_s"].items()],
    ]
    return [run_header(doc), "", table(["figure", "value"], rows)]


WORKERS_INTRO = (
    "`benchmarks/stage1.py --workers-compare` corrects the same synthetic recording with 1 and "
    "2 worker threads in one job (fresh processes, alternating rounds), everything included: "
    "reading, reference, choice of alpha, correction, QC, writing."
)


def workers_lines(doc: dict) -> list[str]:
    runs = doc["results"]["runs"]

    def round_speedups(s: dict) -> str:
        fps = {(r["round"], r["workers"]): r["fps"] for r in runs
               if (r["size"], r["preset"]) == (s["size"], s["preset"])}
        rounds = sorted({key[0] for key in fps})
        return ", ".join(f"{fps[(n, 2)] / fps[(n, 1)]:.2f}" for n in rounds
                         if (n, 1) in fps and (n, 2) in fps)

    rows = [[f"{s['size']}² x {s['frames']}", s["preset"], num(s["fps_1"], 2),
             num(s["fps_2"], 2), f"{s['speedup']:.2f}x", round_speedups(s),
             f"{num(s['cpu_s_per_frame_1'], 4)} / {num(s['cpu_s_per_frame_2'], 4)}"]
            for s in doc["results"]["summaries"]]
    return [run_header(doc), "",
            table(["recording", "preset", "frames/s, 1 worker", "frames/s, 2 workers",
                   "speed-up (means)", "speed-up per round", "CPU-s/frame (1 / 2)"], rows)]


JOB_OVERHEAD_INTRO = (
    "`benchmarks/job_overhead.py` runs one synthetic session of many short recordings through "
    "`snakemake --cores 2` and through `pyflowreg-session` (the API, all three stages in one "
    "process), in alternating rounds, from a warm numba cache. CPU is the user + system time "
    "of each run's whole process tree, Snakemake's own included; per rule, the median of "
    "Snakemake's `benchmark:` record of one job."
)


def job_overhead_lines(doc: dict) -> list[str]:
    r, params = doc["results"], doc["meta"]["params"]
    wf, api = r["workflow"], r["api"]
    rows = [[name, num(run["wall_s"], 0), num(run["cpu_s"], 0), num(run["cpu_s_per_frame"], 4)]
            for name, run in (("Snakemake, --cores 2", wf), ("API (pyflowreg-session)", api))]
    rules = ", ".join(f"{rule} {f['jobs']} x {num(f['median_cpu_s'], 2)} s"
                      for rule, f in sorted(wf["rules"].items()))
    lines = [run_header(doc), "",
             f"Session: {params['recordings']} recordings x {params['frames']} frames, "
             f"{params['size']}², balanced; {wf['jobs']} workflow jobs.", "",
             table(["run", "wall s", "CPU-s", "CPU-s/frame"], rows), "",
             f"CPU of the workflow / the API: **{r['cpu_ratio']:.2f}** (rounds "
             + ", ".join(f"{x:.2f}" for x in r["cpu_ratio_rounds"])
             + f"); extra CPU per workflow job: {num(r['extra_cpu_s_per_job'], 2)} s. "
             f"Per rule (jobs x median CPU-s of one job): {rules}."]
    startup = r.get("startup_cpu_s")
    if startup:
        lines += ["", "What a job's start costs before any work, CPU-s in a fresh process "
                  "(median of runs; the steps in the order a Stage 1 job takes them): "
                  + ", ".join(f"{name} {num(cpu, 2)}" for name, cpu in startup.items())
                  + f"; together {num(sum(startup.values()), 2)}."]
    return lines


PROFILE_INTRO = (
    "`benchmarks/recording_profile.py` times the steps of one short recording's Stage 1 "
    "(`compensate_recording`, one worker, in a warm process: numba kernels and imports "
    "loaded) with timers around the library function of each step, and keeps the round of "
    "least CPU. Indented steps are part of the step above them."
)


def profile_lines(doc: dict) -> list[str]:
    params, best = doc["meta"]["params"], doc["results"]["best"]
    rows = []
    for step in best["steps"]:
        rows.append([("&nbsp;&nbsp;" if step["part_of"] else "") + step["step"],
                     num(step["cpu_s"], 2), f"{100 * step['cpu_s'] / best['cpu_s']:.0f} %"])
    rows.append(["whole recording", num(best["cpu_s"], 2), "100 %"])
    return [run_header(doc), "",
            f"Recording: {shape_text(params['size'], params['frames'])}, {params['preset']}, "
            f"{params['workers']} worker(s); {num(best['cpu_s'] / params['frames'], 4)} "
            f"CPU-s per frame, best of {params['rounds']} rounds.", "",
            table(["step", "CPU-s", "share"], rows)]


SESSION_ROIS_INTRO = (
    "`benchmarks/session_rois.py` runs suite2p's ROI detection and trace extraction "
    "(registration off) once on a whole synthetic session with known neurons and traces: on "
    "the `suite2p` export (aligned recordings, cropped to the session mask, concatenated) and "
    "on the same recordings motion-corrected but not aligned to each other. Per recording: "
    "the true neurons (centre in the common field of view) matched by an ROI within the "
    "matching radius, the median correlation of the matched ROIs' traces (F - 0.7 Fneu) with "
    "the true traces, and the same with each neuron read through the ROI matched in the "
    "reference recording, as one ROI set is used across a session. suite2p runs in its own "
    "environment (the script's docstring says how)."
)


def session_rois_lines(doc: dict) -> list[str]:
    r, params = doc["results"], doc["meta"]["params"]
    versions = doc["meta"].get("versions", {})
    rows = []
    for name, label in (("aligned", "session export (aligned)"),
                        ("baseline", "not aligned between recordings")):
        for rec in r[name]["recordings"]:
            rows.append([label, str(rec["recording"]),
                         f"{rec['found']} / {rec['neurons']} ({100 * rec['found_fraction']:.1f} %)",
                         num(rec["corr_median"], 3), num(rec["corr_ref_roi_median"], 3)])
    tracked = "; ".join(
        f"{name}: {r[name]['rois']} ROIs, {r[name]['tracked']} neurons "
        f"({100 * r[name]['tracked_fraction']:.1f} %) found in every recording"
        for name in ("aligned", "baseline"))
    return [run_header(doc), "",
            f"Session: {params['recordings']} recordings x {params['frames']} frames, "
            f"{params['size']}², {num(params['photons'], 0)} photons/unit, {params['preset']}; "
            f"matching radius {num(params['radius'], 1)} px; suite2p "
            f"{versions.get('suite2p', '?')} (torch {versions.get('torch', '?')}).", "",
            table(["movie", "recording", "true neurons found", "trace correlation",
                   "same, reference recording's ROI"], rows), "",
            f"{tracked}."]


MULTIFILE_INTRO = (
    "`benchmarks/multifile.py` reads one synthetic recording in batches, as Stage 1 reads it, "
    "from one TIFF, from numbered trial files, from one file per frame (a Bruker folder) and "
    "from a Zarr store; each read in a fresh process (opening and its check of every file's "
    "header included), layouts in alternating order, page cache warm. The extra CPU per file "
    "is against the one TIFF."
)


def multifile_lines(doc: dict) -> list[str]:
    params = doc["meta"]["params"]
    rows = [[r["layout"], str(r["files"]), num(r["frames_per_second"], 0),
             num(r["cpu_s_per_frame"], 5), num(r["peak_rss_mb"], 0),
             "—" if r["extra_cpu_ms_per_file"] is None else num(r["extra_cpu_ms_per_file"], 2)]
            for r in doc["results"]["layouts"]]
    return [run_header(doc), "",
            f"Recording: {params['frames']} frames of {params['size']}² uint16, batches of "
            f"{params['batch']}; medians of {params['rounds']} rounds.", "",
            table(["layout", "files", "frames/s", "CPU-s/frame", "peak RSS MB",
                   "extra CPU-ms per file"], rows)]


# --------------------------------------------------------------------------- headline
def _find(rows: list[dict], **fields) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in fields.items())), None)


def headline(docs: dict, reference: list[dict], link: str | None = None) -> str:
    """The short table of README.md (and the top of the page)."""
    rows, used = [], []
    accuracy = docs.get("accuracy")
    cases = accuracy["results"]["cases"] if accuracy else []
    suite2p = [r for r in (docs.get("suite2p") or {}).get("results", {}).get("rows", [])]
    # (model, photons, frame size or None for a real model's own); suite2p is measured at 256.
    for model, photons, size in (("smooth", 100.0, 256), ("local_patches", 100.0, 256),
                                 ("jitter", 100.0, 256), ("real", None, None),
                                 ("smooth_wide", 10.0, 256), ("smooth_wide", 100.0, 512)):
        row = next((r for r in cases if (r["model"], r["photons"], r["preset"]) == (
            model, photons, "balanced") and size in (None, r["size"][0])), None)
        s2p = next((r["suite2p"] for r in suite2p if (r["suite2p"]["model"],
                    r["suite2p"]["photons"]) == (model, photons)), None)
        shape = f", {shape_text(row['size'], row['frames'])}" if row else ""
        rows.append([f"Stage 1 EPE mean (p95), `{model}`, {photons_text(photons)}"
                     f"{'' if photons is None else ' photons/unit'}, balanced{shape}",
                     epe_text(row["epe_mean"], row["epe_p95"]) + " px" if row else "—",
                     epe_text(s2p["epe_mean_offset_removed"], s2p["epe_p95_offset_removed"])
                     + " px" if s2p else "—", "—"])
    used += ["accuracy"] if accuracy else []
    used += ["suite2p"] if suite2p else []
    stage1 = docs.get("stage1")
    runs = stage1["results"]["runs"] if stage1 else []
    for size in (256, 512):
        row = _find(runs, size=size, preset="balanced", frames=1000) or _find(
            runs, size=size, preset="balanced")
        quoted = row and next((e for e in reference if e["benchmark"] == "stage1" and (
            e["input"]["size"], e["input"]["frames"], e["input"]["preset"])
            == (size, row["frames"], "balanced")), None)
        shape = f"{size}² x {row['frames']}" if row else f"{size}²"
        rows.append([f"Stage 1 speed and peak memory, {shape}, balanced, 2 workers",
                     f"{num(row['fps'], 1)} frames/s, {num(row['cpu_s_per_frame'], 3)} "
                     f"CPU-s/frame, {num(row['peak_rss_mb'], 0)} MB" if row else "—", "—",
                     f"{quoted['figures']['fps']:g} frames/s" if quoted else "—"])
    used += ["stage1"] if stage1 else []
    session = docs.get("accuracy_session")
    if session:
        epes = [a["epe_mean"] for s in session["results"]["sessions"] for a in s["alignments"]]
        dice = [s["dice"] for s in session["results"]["sessions"]]
        first = session["results"]["sessions"][0]
        cell = (f"{num(sum(epes) / len(epes), 2)} px ({num(min(epes), 2)}–{num(max(epes), 2)}); "
                f"mask Dice {num(min(dice), 3)}–{num(max(dice), 3)}")
        label = (f"Session alignment EPE mean (range) and mask Dice, sessions of "
                 f"{first['recordings']} x {shape_text(first['size'], first['frames'])}, "
                 f"seeds {', '.join(str(s['seed']) for s in session['results']['sessions'])}")
        used.append("accuracy_session")
    else:
        cell, label = "—", "Session alignment EPE mean (range) and mask Dice"
    rows.append([label, cell, "—", "—"])
    text = [table(["measure", "flowreg-session", "suite2p on the same input (measured)",
                   "reference pyflowreg (quoted, not measured here)"], rows), ""]
    missing = [name for name in ("accuracy", "suite2p", "stage1", "accuracy_session")
               if name not in used]
    runs_text = "; ".join(
        f"`{name}.json` (commit {commit_text(docs[name]['meta'])}, "
        f"{docs[name]['meta'].get('date', 'undated')[:10]})" for name in used)
    note = f"From {runs_text}." if used else "No result file yet."
    if missing:
        note += " Not yet measured: " + ", ".join(f"`{m}.json`" for m in missing) + "."
    quoted = sorted({e["source"] for e in reference if e["benchmark"] == "stage1"})
    note += (" The quoted column holds another tool's figure for the same input (the reference "
             f"pyflowreg implementation, {'; '.join(quoted)}).")
    if link:
        note += f" Details, commands and machines: [{link}]({link})."
    text.append(note)
    return "\n".join(text)


# --------------------------------------------------------------------------- page
def render_page(results: Path = RESULTS, reference_path: Path = REFERENCE_FIGURES) -> str:
    docs, reference = load_results(results), load_reference(reference_path)
    parts = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/report.py from benchmarks/results/*.json and "
        "benchmarks/reference_figures.json; edit those and run `python benchmarks/report.py`. "
        "-->",
        "",
        "Every measured figure on this page is read from a result file in "
        "`benchmarks/results/`, written by the benchmark script's `--json` option together "
        "with the run's command, commit, machine, load average at start and date; each table "
        "is headed by them. Figures of other tools quoted in the project's requirements (not "
        "measured here) are kept in `benchmarks/reference_figures.json` and shown in their own "
        "tables, marked as quoted, with their source; a ratio to one is given only where the "
        "input is the same. `python benchmarks/compare.py --base REF -- <script> <args>` "
        "measures a change against another commit (runs in alternating order, the ratio with "
        "its spread).",
        "",
        "## Headline",
        "",
        headline(docs, reference),
        "",
        section_accuracy(docs, reference),
        "",
        section("Stage 1 accuracy at 1024²", ACCURACY_1024_INTRO, docs, "accuracy_1024",
                accuracy_lines, level=3),
        "",
        section_suite2p(docs),
        "",
        section("Session alignment and mask", SESSION_INTRO, docs, "accuracy_session",
                session_lines),
        "",
        section_mixed(docs),
        "",
        section("Noise model against the generator's truth", NOISE_INTRO, docs, "noise_model",
                noise_lines),
        "",
        section_stage1(docs, reference),
        "",
        section_optical_flow(docs, reference),
        "",
        section("Resume check", RESUME_INTRO, docs, "resume_check", resume_lines),
        "",
        section("Fault injection", FAULTS_INTRO, docs, "fault_injection", faults_lines),
        "",
        section("One recording split into segments", SEGMENTS_INTRO, docs, "segments",
                segments_lines),
        "",
        section("Stage 1 with 1 and 2 workers", WORKERS_INTRO, docs, "stage1_workers",
                workers_lines),
        "",
        section("Cost of a workflow job", JOB_OVERHEAD_INTRO, docs, "job_overhead",
                job_overhead_lines),
        "",
        section("Where a short recording's time goes", PROFILE_INTRO, docs,
                "recording_profile", profile_lines),
        "",
        section("One ROI set across a session", SESSION_ROIS_INTRO, docs, "session_rois",
                session_rois_lines),
        "",
        section("Recordings made of many files", MULTIFILE_INTRO, docs, "multifile",
                multifile_lines),
    ]
    known = set(COMMANDS)
    extra = sorted(set(docs) - known)
    if extra:
        parts += ["", "## Other result files", "",
                  "Result files without a section on this page: "
                  + ", ".join(f"`{name}.json`" for name in extra) + "."]
    return "\n".join(parts) + "\n"


def render_readme(text: str, results: Path = RESULTS,
                  reference_path: Path = REFERENCE_FIGURES) -> str:
    """README.md's text with the headline block rendered; unchanged without the markers."""
    if START not in text or END not in text:
        return text
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    block = headline(load_results(results), load_reference(reference_path),
                     link="docs/benchmarks.md")
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of result files (default benchmarks/results)")
    parser.add_argument("--reference", type=Path, default=REFERENCE_FIGURES,
                        help="quoted figures (default benchmarks/reference_figures.json)")
    parser.add_argument("--out", type=Path, default=PAGE, help="page to write")
    parser.add_argument("--readme", default=str(README),
                        help="README to fill between the headline markers, or 'none'")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file differs from its rendering")
    args = parser.parse_args(argv)
    targets = {args.out: render_page(args.results, args.reference)}
    if args.readme != "none" and Path(args.readme).is_file():
        readme = Path(args.readme)
        targets[readme] = render_readme(readme.read_text(), args.results, args.reference)
    stale = []
    for path, text in targets.items():
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print("out of date (run python benchmarks/report.py): "
              + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
