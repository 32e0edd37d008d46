"""Point labels that do not overlap: each point of a plot gets a short label (its
number in the report's table of cases), placed at the first of a ring of offsets
around it where its box touches no label already placed and no other point. A label
with no free place is left out rather than drawn over another (the table still lists
the point). Greedy, in the order given, on the figure's own text extents."""

OFFSETS = [(4, 4), (4, -10), (-10, 4), (-10, -10), (8, -3), (-14, -3), (-3, 8), (-3, -14),
           (12, 10), (12, -16), (-18, 10), (-18, -16), (0, 16), (0, -22), (18, 0), (-24, 0)]
POINT_RADIUS = 3.0  # display units: a label may not cover another point's marker


def _overlaps(box, others, pad=1.0):
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + pad and b[0] < x1 + pad and y0 < b[3] + pad and b[1] < y1 + pad
               for b in others)


def place_labels(ax, xs, ys, texts, fontsize=7, **style):
    """Annotate the points (data coordinates) with ``texts``; returns the Text
    artists placed (one per label that found room)."""
    figure = ax.figure
    ax.autoscale_view()  # the data limits the labels are placed against
    renderer = figure.canvas.get_renderer()
    to_display = ax.transData.transform
    points = [tuple(to_display((x, y))) for x, y in zip(xs, ys)]
    markers = [(px - POINT_RADIUS, py - POINT_RADIUS, px + POINT_RADIUS, py + POINT_RADIUS)
               for px, py in points]
    placed, boxes = [], []
    for i, ((px, py), text) in enumerate(zip(points, texts)):
        others = markers[:i] + markers[i + 1:]
        for dx, dy in OFFSETS:
            artist = ax.annotate(text, (xs[i], ys[i]), xytext=(dx, dy),
                                 textcoords="offset points", fontsize=fontsize, **style)
            extent = artist.get_window_extent(renderer)
            box = (extent.x0, extent.y0, extent.x1, extent.y1)
            inside = ax.get_window_extent(renderer)
            fits = inside.x0 <= box[0] and box[2] <= inside.x1 and \
                inside.y0 <= box[1] and box[3] <= inside.y1
            if fits and not _overlaps(box, boxes) and not _overlaps(box, others, pad=0.0):
                placed.append(artist)
                boxes.append(box)
                break
            artist.remove()
    return placed


def label_boxes(artists):
    """The display boxes of placed labels (for tests and callers that check)."""
    renderer = artists[0].figure.canvas.get_renderer() if artists else None
    return [tuple(a.get_window_extent(renderer).extents) for a in artists]
