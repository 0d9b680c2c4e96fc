"""Campaign figures: structures (paper Fig. 2a-c) and one cell's scan (Fig. 2d-e).

Only matplotlib's object-oriented API is used (``Figure``, no ``pyplot``): nothing changes the
global backend, PNG files are drawn by Agg and the output format follows the suffix of the
output path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from matplotlib.ticker import ScalarFormatter

from interface4d.structures import build_from_settings, interface_x

ELEMENTS = ("Sr", "Ti", "La", "Al", "O")
COLORS = {
    "Sr": "#2ca02c",  # green
    "Ti": "#1f77b4",  # blue
    "La": "#ff7f0e",  # orange
    "Al": "#c5b0d5",  # light purple: stands apart from Ti where Ti replaces Al
    "O": "#d62728",  # red
}
# Drawn diameter of a column in Angstrom (cation and O columns are a/2 = 1.95 A apart).
DIAMETER = {"Sr": 1.4, "Ti": 1.2, "La": 1.5, "Al": 1.1, "O": 0.75}
# Side views show cations only, at least a/sqrt(2) = 2.76 A apart: draw them larger.
SIDE_ZOOM = {"x-z": 1.4, "y-z": 2.0}
CATIONS = ("Sr", "Ti", "La", "Al")
DPI = 150
ROW_HEIGHT = 3.6  # inches per structure row
SIDE_MAX_ASPECT = 3.0  # side views taller than 3:1 are compressed along z (ticks stay true)


# --------------------------------------------------------------------------------------------
# structures
# --------------------------------------------------------------------------------------------


def _columns(
    symbols: np.ndarray, u: np.ndarray, v: np.ndarray, elements: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Atom columns in the (u, v) plane: their coordinates (n, 2) and counts per element (n, e)."""
    keep = np.isin(symbols, elements)
    key = np.round(np.stack([u[keep], v[keep]], axis=1), 3)
    cols, inverse = np.unique(key, axis=0, return_inverse=True)
    index = {e: i for i, e in enumerate(elements)}
    species = np.fromiter((index[s] for s in symbols[keep]), dtype=int, count=int(keep.sum()))
    counts = np.zeros((len(cols), len(elements)), dtype=int)
    np.add.at(counts, (inverse.ravel(), species), 1)
    return cols, counts


def _draw_columns(
    ax, cols, counts, elements, pt_per_angstrom: float, zoom: float = 1.0, cap: float = np.inf
) -> None:
    """Each column as a disc in the colour of its majority element (diameter ``DIAMETER`` x
    ``zoom``, at most ``cap``, in Angstrom). A mixed column also gets a disc for each minority
    element drawn inside it, its area the element's share of the column."""
    frac = counts / counts.sum(axis=1, keepdims=True)
    major = frac.argmax(axis=1)
    diameter = np.array([min(DIAMETER[elements[m]] * zoom, cap) for m in major])
    outer = (diameter * pt_per_angstrom) ** 2
    for i, e in enumerate(elements):
        sel = major == i
        if sel.any():
            ax.scatter(
                cols[sel, 0], cols[sel, 1], s=outer[sel], c=COLORS[e], edgecolors="k",
                linewidths=0.3, zorder=2 if e == "O" else 3,
            )  # fmt: skip
    # minority elements, largest share first so smaller discs stay on top
    order = np.argsort(-frac, axis=1)
    for rank in range(1, len(elements)):
        sp = order[:, rank]
        share = frac[np.arange(len(cols)), sp]
        for i, e in enumerate(elements):
            sel = (sp == i) & (share > 0)
            if sel.any():
                ax.scatter(
                    cols[sel, 0], cols[sel, 1], s=outer[sel] * share[sel], c=COLORS[e],
                    edgecolors="k", linewidths=0.3, zorder=4 + rank,
                )  # fmt: skip


def _projection_columns(symbols: np.ndarray, positions: np.ndarray):
    """Beam-projection columns: cation columns by their cation mix (in this [100] projection a
    B-site column also holds one O per unit cell, left out of its colour), and pure O columns."""
    x, y = positions[:, 0], positions[:, 1]
    cols, counts = _columns(symbols, x, y, CATIONS)
    ocols, _ = _columns(symbols, x, y, ("O",))
    pure_o = ~(ocols[:, None, :] == cols[None, :, :]).all(axis=2).any(axis=1)
    return cols, counts, ocols[pure_o]


def _pt_per_angstrom(ax) -> float:
    """Points per Angstrom of an axes after layout (the smaller of its two directions)."""
    bbox = ax.get_window_extent()
    to_pt = 72.0 / ax.figure.dpi
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    return min(bbox.width * to_pt / abs(x1 - x0), bbox.height * to_pt / abs(y1 - y0))


def _row_label(settings: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    kind = settings["kind"]
    a = settings["structure"]["lattice_constant"]
    head = f"{settings['cell']}  ({kind}, {settings['nz']} u.c. = {settings['nz'] * a:.1f} Å thick)"
    if kind == "step":
        d = settings["step_depth"]
        return f"{head}\nstep fraction {settings['step_fraction']:.2f}: step at depth {d} u.c. = {d * a:.1f} Å"
    if kind == "diffusion":
        return (
            f"{head}\nTi fraction {settings['ti_fraction']:g} in the first AlO$_2$ plane "
            f"({info['ti_substituted']} Al → Ti), seed {settings['seed']}"
        )
    return head


def plot_structures(settings_list: list[dict], output: str | Path) -> Path:
    """Draw LAO/STO cross-sections, one row per cell settings dict (Fig. 2a-c).

    Each row, for the structure built by :func:`interface4d.structures.build_from_settings`:

    * left: the beam projection (x = growth direction [001] horizontal, y vertical, Å). Every
      atom column is a disc coloured by element; a column whose atoms differ along the beam (the
      LaO/SrO and AlO2/TiO2 planes at a buried step, the Ti-substituted first AlO2 plane) gets
      a disc for each minority element drawn inside the majority disc, its area the element's
      share of the column. The dashed line is the nominal TiO2/LaO interface,
      ``atoms.info["interface_x"]``.
    * right, ``step`` and ``flat`` cells: the side view x-z (z = depth along the beam, pointing
      down into the specimen), cations only, projected along y. For a step the solid line
      traces the interface (layer n above the step, n + 1 below) and the horizontal line marks
      the step depth ``step_depth * a``.
    * right, ``diffusion`` cells: the first AlO2 plane alone, seen face-on (y horizontal, z
      down), cations only. Projected along y (x-z) every column of that plane would just be a
      mixed Al/Ti column and the side view would carry no more than the projection; face-on,
      each substituted site is visible individually, which is what the seeded intermixing is.

    Side views are drawn to scale up to a 3:1 panel; thicker specimens are compressed along z
    (the tick labels stay true). The output format follows the suffix of ``output``.
    """
    if not settings_list:
        raise ValueError("plot_structures needs at least one structure settings dict")
    output = Path(output)
    rows = []
    for settings in settings_list:
        atoms = build_from_settings(settings)
        rows.append((settings, atoms))

    n = len(rows)
    fig = Figure(figsize=(6.8, ROW_HEIGHT * n + 0.6), layout="constrained")
    gs = fig.add_gridspec(n, 2, width_ratios=[1.0, 0.55])
    draw = []  # (axes, columns, counts, elements, zoom, cap): drawn once the layout is known
    for r, (settings, atoms) in enumerate(rows):
        a = settings["structure"]["lattice_constant"]
        lx, ly, lz = (float(v) for v in atoms.cell.lengths())
        sym = np.array(atoms.get_chemical_symbols())
        pos = atoms.positions
        xi = float(atoms.info["interface_x"])

        # left: beam projection x-y
        ax = fig.add_subplot(gs[r, 0])
        cols, counts, ocols = _projection_columns(sym, pos)
        draw.append((ax, cols, counts, CATIONS, 1.0, np.inf))
        draw.append((ax, ocols, np.ones((len(ocols), 1), dtype=int), ("O",), 1.0, np.inf))
        ax.axvline(xi, color="k", ls="--", lw=1.0, zorder=1)
        ax.set_xlim(0, lx)
        ax.set_ylim(-a / 4, ly - a / 4)  # one periodic cell, no column cut at the edge
        ax.set_aspect("equal")
        ax.set_xlabel("x, growth direction (Å)")
        ax.set_ylabel("y (Å)")
        ax.set_title(
            f"{_row_label(settings, atoms.info)}\nbeam projection (x–y, Å)",
            loc="left",
            fontsize=8.5,
        )

        # right: side view
        ax2 = fig.add_subplot(gs[r, 1])
        if settings["kind"] == "diffusion":
            x_plane = 2 * atoms.info["interface_layer"] * a / 2 + a / 4
            on = np.isclose(pos[:, 0], x_plane)
            width, ulabel = ly, "y (Å)"
            cols2, counts2 = _columns(sym[on], pos[on, 1], pos[on, 2], CATIONS)
            title = f"first AlO$_2$ plane (x = {x_plane:.2f} Å)\nface-on (y–z, Å, cations)"
            zoom = SIDE_ZOOM["y-z"]
        else:
            width, ulabel = lx, "x (Å)"
            cols2, counts2 = _columns(sym, pos[:, 0], pos[:, 2], CATIONS)
            title = "side view (x–z, Å, cations)"
            zoom = SIDE_ZOOM["x-z"]
        # cations sit >= a/4 from the surfaces: discs up to a/2 across are never cut
        draw.append((ax2, cols2, counts2, CATIONS, zoom, a / 2))
        ax2.set_box_aspect(min(lz / width, SIDE_MAX_ASPECT))
        ax2.set_xlim(0, width)  # B sites of the face-on plane sit at y = (i + 1/2) a
        if settings["kind"] != "diffusion":
            ax2.axvline(xi, color="k", ls="--", lw=1.0, zorder=1)
        if settings["kind"] == "step":
            depth = settings["step_depth"] * a
            ax2.axhline(depth, color="k", lw=1.0, zorder=6)
            ax2.plot([xi, xi, xi + a, xi + a], [0, depth, depth, lz], color="0.2", lw=1.6, zorder=6)
            title += f"\nstep at z = {depth:.1f} Å; solid: interface"
        ax2.set_ylim(lz, 0)  # z points down, into the specimen
        ax2.set_xlabel(ulabel)
        ax2.set_ylabel("z, depth along beam (Å)")
        ax2.set_title(title, fontsize=7.5)

    handles = [
        Line2D([], [], ls="", marker="o", ms=7, mfc=COLORS[e], mec="k", mew=0.4, label=e)
        for e in ELEMENTS
    ]
    handles.append(Line2D([], [], color="k", ls="--", lw=1.0, label="nominal interface"))
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8)
    fig.supxlabel(
        "Columns mixed along the beam: the minority cation is drawn inside, its area ∝ its share "
        "of the column.\nB-site columns (TiO, AlO) are coloured by their cation.",
        fontsize=7, color="0.3",
    )  # fmt: skip
    # marker sizes are in points: size them from the axes as laid out (scatter content does
    # not change the constrained layout, so the sizes hold when the figure is saved)
    fig.set_dpi(DPI)
    fig.draw_without_rendering()
    for ax, cols, counts, elements, zoom, cap in draw:
        if len(cols):
            _draw_columns(ax, cols, counts, elements, _pt_per_angstrom(ax), zoom, cap)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=DPI)
    return output


# --------------------------------------------------------------------------------------------
# scan montage
# --------------------------------------------------------------------------------------------


def _json_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    return json.loads(value) if isinstance(value, str) else value


def _k_axes(shape: tuple[int, int], sampling: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Scattering angles (mrad) of the detector pixels; zero at index n // 2 (fftshifted)."""
    return tuple((np.arange(n) - n // 2) * s for n, s in zip(shape, sampling, strict=True))


def plot_scan_montage(h5_path: str | Path, output: str | Path, n_patterns: int = 8) -> Path:
    """Draw one simulated cell's scan (Fig. 2d-e) from its HDF5 file.

    * (d) the mean intensity of every CBED pattern over the scan (x horizontal, y vertical, Å,
      equal aspect), with the nominal interface (dashed), the line y = scan y[0] used for the
      montage and, as numbered dots, the probe positions shown in (e). For a step cell the
      dotted line is the interface below the step (one unit cell further).
    * (e) ``n_patterns`` CBED patterns evenly spaced along that line, log intensity on one
      shared scale, angles in mrad; the dashed circle is the probe semiangle (bright-field disc).
    * (f) the line profile along the same line: intensity inside the bright-field disc (BF)
      and in the annulus from the disc edge to the largest full circle on the detector (DF),
      as fractions of the incident probe.

    The file is read one scan row at a time (the montage reads only its patterns). Incomplete
    files (no ``complete`` attribute) are refused with an OSError naming the file.
    """
    import h5py

    from interface4d.h5io import require_complete

    h5_path, output = Path(h5_path), Path(output)
    if n_patterns < 1:
        raise ValueError(f"n_patterns = {n_patterns}: need at least one pattern")
    with h5py.File(h5_path, "r") as fh:
        require_complete(fh, h5_path)
        settings = _json_attr(fh.attrs["settings"])
        sampling = [float(s) for s in _json_attr(fh.attrs["angular_sampling_mrad"])]
        cell = str(fh.attrs.get("cell", settings["cell"]))
        kind = str(fh.attrs.get("kind", settings["kind"]))
        sx, sy = fh["scan/x"][()], fh["scan/y"][()]
        dset = fh["cbed"]
        nx, ny, nkx, nky = dset.shape
        kx, ky = _k_axes((nkx, nky), sampling)
        k = np.hypot(kx[:, None], ky[None, :])
        alpha = float(settings["simulation"]["semiangle_cutoff"])
        k_out = float(min(-kx[0], kx[-1], -ky[0], ky[-1]))
        bf_mask = k <= alpha
        df_mask = (k > alpha) & (k <= k_out)
        mean = np.empty((nx, ny))
        bf = np.empty(nx)
        df = np.empty(nx)
        for i in range(nx):  # one scan row at a time
            row = dset[i]
            mean[i] = row.mean(axis=(1, 2))
            bf[i] = row[0][bf_mask].sum()
            df[i] = row[0][df_mask].sum()
        picks = np.unique(np.round(np.linspace(0, nx - 1, min(n_patterns, nx))).astype(int))
        patterns = np.stack([dset[i, 0] for i in picks])  # only the montage's patterns

    a = settings["structure"]["lattice_constant"]
    layer = settings["structure"]["interface_layer"]
    xi = interface_x(layer, a)
    x_below = interface_x(layer + 1, a) if kind == "step" else None
    dx = float(sx[1] - sx[0]) if nx > 1 else a / 4
    dy = float(sy[1] - sy[0]) if ny > 1 else a
    extent = [sx[0] - dx / 2, sx[-1] + dx / 2, sy[0] - dy / 2, sy[-1] + dy / 2]

    m = len(picks)
    ncols = min(m, 8)
    nrows = -(-m // ncols)
    fig = Figure(figsize=(max(10.0, 1.45 * ncols + 0.8), 3.3 + 1.75 * nrows), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.3, 1.75 * nrows])
    ax_d, ax_f = top.subplots(1, 2, width_ratios=[1.25, 1.0])
    im = ax_d.imshow(mean.T, origin="lower", extent=extent, cmap="magma", interpolation="nearest")
    ax_d.set_aspect("equal")
    fmt = ScalarFormatter(useMathText=True)
    fmt.set_powerlimits((-2, 3))
    top.colorbar(im, ax=ax_d, label="mean CBED intensity", shrink=0.8, format=fmt)
    outline = [patheffects.withStroke(linewidth=2.0, foreground="k")]
    ax_d.plot([sx[0], sx[-1]], [sy[0], sy[0]], color="c", lw=1.2, label="montage line")
    ax_d.scatter(
        sx[picks], np.full(m, sy[0]), s=14, c="c", edgecolors="k", linewidths=0.4, zorder=3
    )
    for j, i in enumerate(picks):
        ax_d.annotate(
            str(j + 1), (sx[i], sy[0]), xytext=(0, 4), textcoords="offset points", ha="center",
            va="bottom", color="c", fontsize=7,
        )  # fmt: skip
    for ax, style in ((ax_d, {"color": "w", "path_effects": outline}), (ax_f, {"color": "k"})):
        ax.axvline(xi, ls="--", lw=1.0, label="nominal interface", **style)
        if x_below is not None:
            ax.axvline(x_below, ls=":", lw=1.2, label="interface below the step", **style)
    ax_d.set_xlim(extent[0], extent[1])
    ax_d.set_ylim(extent[2], extent[3])
    ax_d.set_xlabel("probe x (Å)")
    ax_d.set_ylabel("probe y (Å)")
    ax_d.set_title(f"(d) {cell} ({kind}): mean CBED intensity (x–y, Å)", loc="left", fontsize=9)
    ax_d.legend(loc="upper left", bbox_to_anchor=(0, -0.2), fontsize=7, ncols=3, frameon=False)

    ax_f.plot(sx, bf, "o-", ms=3, color="#1f77b4", label=f"BF (≤ {alpha:g} mrad)")
    ax_f.set_xlabel("probe x (Å)")
    ax_f.set_ylabel("BF intensity (fraction of probe)", color="#1f77b4")
    ax_f2 = ax_f.twinx()
    ax_f2.plot(sx, df, "s-", ms=3, color="#d62728", label=f"DF ({alpha:g}–{k_out:.0f} mrad)")
    ax_f2.set_ylabel("DF intensity (fraction of probe)", color="#d62728")
    ax_f.set_xlim(extent[0], extent[1])
    ax_f.set_title(f"(f) line profile at y = {sy[0]:.2f} Å", loc="left", fontsize=9)
    lines = ax_f.get_lines() + ax_f2.get_lines()
    ax_f.legend(
        lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper left",
        bbox_to_anchor=(0, -0.2), ncols=2, frameon=False,
    )  # fmt: skip

    # colour scale from the pixels inside the largest full circle: the corners beyond the
    # antialiasing aperture hold only round-off (~1e-19)
    inside = patterns[:, k <= k_out]
    positive = inside[inside > 0]
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(float(np.percentile(positive, 1)) if positive.size else vmax * 1e-6, vmax * 1e-6)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    kext = [
        kx[0] - sampling[0] / 2,
        kx[-1] + sampling[0] / 2,
        ky[0] - sampling[1] / 2,
        ky[-1] + sampling[1] / 2,
    ]
    axes = np.atleast_1d(bottom.subplots(nrows, ncols, sharex=True, sharey=True)).ravel()
    for j, ax in enumerate(axes):
        if j >= m:
            ax.set_axis_off()
            continue
        i = picks[j]
        img = ax.imshow(
            np.clip(patterns[j].T, vmin, None), origin="lower", extent=kext, norm=norm,
            cmap="viridis", interpolation="nearest",
        )  # fmt: skip
        ax.add_patch(Circle((0, 0), alpha, fill=False, ec="w", ls="--", lw=0.6))
        ax.set_title(f"{j + 1}: x = {sx[i]:.2f} Å", fontsize=8)
        ax.tick_params(labelsize=7)
        if j % ncols == 0:
            ax.set_ylabel("k$_y$ (mrad)", fontsize=8)
        if j // ncols == nrows - 1 or j + ncols >= m:
            ax.set_xlabel("k$_x$ (mrad)", fontsize=8)
    bottom.colorbar(img, ax=axes.tolist(), label="intensity (log)", shrink=0.9, pad=0.01)
    bottom.suptitle(
        f"(e) CBED patterns along y = {sy[0]:.2f} Å across the interface (x = {xi:.2f} Å)",
        x=0.01, ha="left", fontsize=9,
    )  # fmt: skip

    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=DPI)
    return output
