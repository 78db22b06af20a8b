package timeline

import (
	"bufio"
	"cmp"
	"fmt"
	"html"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// svgColors fill the slices, one per outcome; they stay distinct for the
// common kinds of colour blindness by lightness as well as hue.
var svgColors = map[Outcome]string{
	Succeeded: "#2e9e44",
	Failed:    "#c62828",
	TimedOut:  "#ef8f1f",
	Skipped:   "#a8a8a8",
	Cancelled: "#4a5563",
	Unended:   "#3b7dd8",
}

var legendOrder = []Outcome{Succeeded, Failed, TimedOut, Skipped, Cancelled, Unended}

// SVG layout, in pixels.
const (
	svgWidth    = 1100
	labelWidth  = 150           // the lane names' column
	rightMargin = tailWidth + 4 // room for an abandoned tail at the very end
	titleHeight = 26
	rowHeight   = 22
	laneGap     = 6
	axisHeight  = 30
	legendH     = 36
	charWidth   = 6.6 // of the 11px sans-serif labels, for fitting text
	minBar      = 3   // the narrowest bar drawn: an instant attempt is still seen
	tailWidth   = 26  // the abandoned tail of a soft timeout
	textPad     = 4   // between a bar and a label beside it
	itemGap     = 6   // between two things in one display row
)

// item is one slice as drawn: its bar, its tail, its label, where they go.
type item struct {
	s        Slice
	lane     int
	x0, x1   float64 // the bar
	tail     float64 // the abandoned tail's right end; x1 without one
	text     string  // the label; "" when none fits
	inside   bool    // the label is on the bar (white), else beside it (dark)
	tx       float64 // the label's left end
	from, to float64 // the extent in its display row: bar, tail and label
	row      int     // the display row within the lane
	cy       float64 // the row's middle, once placed
}

// WriteSVG writes the timeline as a self-contained SVG image, 1100 px
// wide: a title (flow, run, executor, total and how many attempts ran
// where), lanes as rows with their names on the left, a time axis, and one
// bar per attempt coloured by outcome, at least 3 px wide so that an
// instant one is still seen. Each bar is labelled: on the bar when the
// label fits, beside it otherwise, and a lane gets another row rather
// than letting labels and bars overlap. The wait before each retry is a
// dashed arrow from the attempt it follows (in whatever lane that ran) to
// the retry, with its length when there is room; a soft timeout whose
// work may still run has a hatched, fading tail after its bar. Every bar
// has a tooltip (title) with the task, attempt, lane, outcome, duration
// and error, and a legend ends the picture. An empty timeline gives a
// picture that says so.
func (tl *Timeline) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	plotW := float64(svgWidth - labelWidth - rightMargin)
	span := tl.Span
	if span <= 0 {
		span = time.Millisecond
	}
	x := func(d time.Duration) float64 { return labelWidth + plotW*float64(d)/float64(span) }

	// Place every slice: bar, tail, label, then a display row per lane.
	laneRows := make([]int, len(tl.Lanes))
	var items []*item
	for li, l := range tl.Lanes {
		var lane []*item
		for _, s := range l.Slices {
			it := &item{s: s, lane: li, x0: x(s.Start)}
			it.x1 = max(x(s.End), it.x0+minBar)
			it.tail = it.x1
			if s.Abandoned {
				it.tail = it.x1 + tailWidth
			}
			it.placeLabel(s.label())
			lane = append(lane, it)
		}
		laneRows[li] = packItems(lane)
		items = append(items, lane...)
	}
	rows := 0
	for _, n := range laneRows {
		rows += n
	}
	top := titleHeight + axisHeight
	height := top + rows*rowHeight + len(tl.Lanes)*laneGap + legendH
	if len(tl.Lanes) == 0 {
		height = top + rowHeight + legendH
	}
	laneTop := make([]int, len(tl.Lanes))
	y := top
	for li := range tl.Lanes {
		laneTop[li] = y
		y += laneRows[li]*rowHeight + laneGap
	}
	for _, it := range items {
		it.cy = float64(laneTop[it.lane]+it.row*rowHeight) + rowHeight/2
	}

	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprint(bw, `<defs>`+
		`<pattern id="abandoned" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">`+
		`<rect width="6" height="6" fill="#fbe3c6"/><rect width="3" height="6" fill="#ef8f1f"/></pattern>`+
		`<linearGradient id="fade"><stop offset="0" stop-color="#fff" stop-opacity="0"/><stop offset="1" stop-color="#fff" stop-opacity="0.9"/></linearGradient>`+
		`<marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">`+
		`<path d="M0,0 L8,4 L0,8 z" fill="#666"/></marker>`+
		"</defs>\n")
	fmt.Fprintf(bw, `<text class="title" x="8" y="18" font-size="13" font-weight="bold" fill="#222">%s</text>`+"\n", esc(tl.title()))
	if len(tl.Lanes) == 0 {
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="#555">no attempt started</text>`+"\n", labelWidth, top+rowHeight/2+4)
	}

	// Time axis: about eight ticks at a round step.
	step := niceStep(span / 8)
	for t := time.Duration(0); t <= span; t += step {
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>`+"\n", x(t), top-6, x(t), height-legendH)
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x(t), top-12, fmtDuration(t))
	}

	// Lanes: a band per lane, its name on the left.
	for li, l := range tl.Lanes {
		laneH := laneRows[li] * rowHeight
		if li%2 == 1 {
			fmt.Fprintf(bw, `<rect x="0" y="%d" width="%d" height="%d" fill="#f6f7f9"/>`+"\n", laneTop[li]-laneGap/2, svgWidth, laneH+laneGap)
		}
		fmt.Fprintf(bw, `<text x="8" y="%d" fill="#222" font-weight="bold">%s</text>`+"\n", laneTop[li]+rowHeight/2+4, esc(clip(l.Name, labelWidth-16)))
	}

	// Waits first, under the bars: the retry's arrow from the attempt it
	// follows.
	byAttempt := map[string]*item{}
	for _, it := range items {
		byAttempt[it.s.Task+"#"+strconv.Itoa(it.s.Attempt)] = it
	}
	for _, wt := range tl.Waits {
		prev := byAttempt[wt.Task+"#"+strconv.Itoa(wt.Attempt-1)]
		next := byAttempt[wt.Task+"#"+strconv.Itoa(wt.Attempt)]
		if prev == nil || next == nil {
			continue
		}
		// From the end of the attempt before (through its abandoned tail,
		// if any: the retry did not wait for that), or, in one row, from
		// after its label.
		x0, y0 := prev.x1, prev.cy
		x1, y1 := next.x0, next.cy
		if y0 == y1 && prev.text != "" && !prev.inside && prev.tx > prev.x1 && prev.to+2 < x1-8 {
			x0 = prev.to + 2
		}
		fmt.Fprintf(bw, `<g class="wait"><title>%s</title>`, esc(fmt.Sprintf("%s waited %s before attempt %d (retry delay and scheduling)",
			wt.Task, fmtDuration(wt.To-wt.From), wt.Attempt)))
		if y0 == y1 && x1-x0 < 8 { // no room for an arrow: a tick joins them
			fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#666" stroke-width="1.5"/>`, x0, y0-8, x0, y0+8)
		} else {
			fmt.Fprintf(bw, `<path d="M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="#666" stroke-width="1.2" stroke-dasharray="4 3" marker-end="url(#arrow)"/>`,
				x0, y0, (x0+x1)/2, y0, (x0+x1)/2, y1, x1-1, y1)
		}
		if label := "wait " + fmtDuration(wt.To-wt.From); y0 == y1 && x1-x0 > textWidth(label)+16 {
			fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555" font-size="10">%s</text>`, (x0+x1)/2, y0-3, esc(label))
		}
		fmt.Fprint(bw, "</g>\n")
	}

	// Bars, tails and labels.
	for _, it := range items {
		s := it.s
		barTop := it.cy - rowHeight/2 + 2
		fmt.Fprintf(bw, `<g class="attempt"><title>%s</title>`, esc(tooltip(s, tl.Lanes[it.lane].Name)))
		fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" rx="2" fill="%s"/>`,
			it.x0, barTop, it.x1-it.x0, rowHeight-4, svgColors[s.Outcome])
		if s.Abandoned {
			fmt.Fprintf(bw, `<g class="abandoned"><rect x="%.1f" y="%.1f" width="%d" height="%d" fill="url(#abandoned)"/>`+
				`<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="url(#fade)"/></g>`,
				it.x1, barTop+3, tailWidth, rowHeight-10, it.x1, barTop+3, tailWidth, rowHeight-10)
		}
		if it.text != "" {
			fill := "#222"
			if it.inside {
				fill = "#ffffff"
			}
			fmt.Fprintf(bw, `<text class="label" x="%.1f" y="%.1f" fill="%s">%s</text>`, it.tx, it.cy+4, fill, esc(it.text))
		}
		fmt.Fprint(bw, "</g>\n")
	}

	// Legend: outcomes, then the two marks that are not outcomes.
	lx := float64(labelWidth)
	ly := height - legendH + 14
	for _, o := range legendOrder {
		fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="12" height="12" rx="2" fill="%s"/>`, lx, ly, svgColors[o])
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" fill="#333">%s</text>`+"\n", lx+16, ly+10, esc(string(o)))
		lx += 16 + textWidth(string(o)) + 18
	}
	const abandonedText = "abandoned: told to stop, may still run"
	fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="18" height="8" fill="url(#abandoned)"/>`, lx, ly+2)
	fmt.Fprintf(bw, `<text x="%.1f" y="%d" fill="#333">%s</text>`+"\n", lx+22, ly+10, abandonedText)
	lx += 22 + textWidth(abandonedText) + 18
	fmt.Fprintf(bw, `<path d="M%.1f,%d L%.1f,%d" stroke="#666" stroke-width="1.2" stroke-dasharray="4 3" marker-end="url(#arrow)"/>`, lx, ly+6, lx+22, ly+6)
	fmt.Fprintf(bw, `<text x="%.1f" y="%d" fill="#333">wait before a retry</text>`+"\n", lx+28, ly+10)
	fmt.Fprint(bw, "</svg>\n")
	return bw.Flush()
}

// placeLabel puts text on the bar if it fits there, else beside it: after
// the bar (and its tail), or before it when the picture ends first. It
// sets the item's extent, which packItems keeps apart from its neighbours.
func (it *item) placeLabel(text string) {
	it.from, it.to = it.x0, it.tail
	tw := textWidth(text)
	switch {
	case tw+6 <= it.x1-it.x0:
		it.text, it.inside, it.tx = text, true, it.x0+3
	case it.tail+textPad+tw <= svgWidth-4:
		it.text, it.tx = text, it.tail+textPad
		it.to = it.tx + tw
	case it.x0-textPad-tw >= labelWidth:
		it.text, it.tx = text, it.x0-textPad-tw
		it.from = it.tx
	default: // wider than the picture allows: clipped on the bar, if anything
		it.text, it.inside, it.tx = clip(text, it.x1-it.x0-6), true, it.x0+3
	}
}

// packItems gives each item of one lane the lowest display row where its
// extent (bar, tail, label) clears what that row already holds, and
// returns the number of rows, at least 1.
func packItems(lane []*item) int {
	slices.SortStableFunc(lane, func(a, b *item) int { return cmp.Compare(a.from, b.from) })
	var ends []float64
	for _, it := range lane {
		row := slices.IndexFunc(ends, func(end float64) bool { return end+itemGap <= it.from })
		if row < 0 {
			row = len(ends)
			ends = append(ends, 0)
		}
		ends[row] = it.to
		it.row = row
	}
	return max(len(ends), 1)
}

// title is the picture's title: what ran, where, and how long it took.
func (tl *Timeline) title() string {
	var parts []string
	if tl.Flow != "" {
		parts = append(parts, "flow "+tl.Flow)
	}
	if tl.Run != "" {
		parts = append(parts, "run "+tl.Run)
	}
	if tl.Executor != "" {
		parts = append(parts, "on "+tl.Executor)
	}
	total := tl.Total
	if total <= 0 {
		total = tl.Span
	}
	n := 0
	for _, l := range tl.Lanes {
		n += len(l.Slices)
	}
	attempts, lanes := "attempts", "lanes"
	if n == 1 {
		attempts = "attempt"
	}
	if len(tl.Lanes) == 1 {
		lanes = "lane"
	}
	parts = append(parts, fmt.Sprintf("%s total, %d %s on %d %s", fmtDuration(total), n, attempts, len(tl.Lanes), lanes))
	return strings.Join(parts, " · ")
}

func tooltip(s Slice, lane string) string {
	t := fmt.Sprintf("%s, attempt %d, on %s\n%s in %s (at %s)", s.Task, s.Attempt, lane, s.Outcome,
		fmtDuration(s.End-s.Start), fmtDuration(s.Start))
	if s.Abandoned {
		t += "\nabandoned: the work was told to stop and may have run on"
	}
	if s.Error != "" {
		t += "\n" + s.Error
	}
	return t
}

// textWidth estimates the width of an 11px label.
func textWidth(text string) float64 { return float64(len([]rune(text))) * charWidth }

// clip shortens text to fit width pixels, with an ellipsis; "" if even
// two characters do not fit.
func clip(text string, width float64) string {
	fit := int(width / charWidth)
	r := []rune(text)
	switch {
	case len(r) <= fit:
		return text
	case fit < 3:
		return ""
	}
	return string(r[:fit-1]) + "…"
}

func esc(s string) string { return html.EscapeString(s) }

// niceStep rounds d up to 1, 2 or 5 times a power of ten.
func niceStep(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Microsecond
	}
	p := time.Duration(1)
	for p*10 <= d {
		p *= 10
	}
	for _, m := range []time.Duration{1, 2, 5, 10} {
		if m*p >= d {
			return m * p
		}
	}
	return 10 * p
}

// fmtDuration prints a duration with at most three significant digits.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return trim(float64(d)/1e3) + "µs"
	case d < time.Second:
		return trim(float64(d)/1e6) + "ms"
	}
	return trim(d.Seconds()) + "s"
}

func trim(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
