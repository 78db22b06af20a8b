package timeline

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
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
	labelWidth  = 150
	rightMargin = 20
	rowHeight   = 22
	laneGap     = 6
	axisHeight  = 34
	legendH     = 36
	charWidth   = 6.6 // of the 11px sans-serif labels, for fitting text
)

// WriteSVG writes the timeline as a self-contained SVG image: lanes as
// rows with their names on the left, a time axis, one bar per attempt
// coloured by outcome and labelled when it is wide enough, a tooltip
// (title) on every bar, and a legend.
func (tl *Timeline) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	rows := 0
	for _, l := range tl.Lanes {
		rows += l.Rows
	}
	plotW := float64(svgWidth - labelWidth - rightMargin)
	height := axisHeight + rows*rowHeight + len(tl.Lanes)*laneGap + legendH
	span := tl.Span
	if span <= 0 {
		span = time.Millisecond
	}
	x := func(d time.Duration) float64 { return labelWidth + plotW*float64(d)/float64(span) }

	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)

	// Time axis: about eight ticks at a round step.
	step := niceStep(span / 8)
	for t := time.Duration(0); t <= span; t += step {
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>`+"\n", x(t), axisHeight-6, x(t), height-legendH)
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x(t), axisHeight-12, fmtDuration(t))
	}

	y := axisHeight
	for i, l := range tl.Lanes {
		laneH := l.Rows * rowHeight
		if i%2 == 1 {
			fmt.Fprintf(bw, `<rect x="0" y="%d" width="%d" height="%d" fill="#f6f7f9"/>`+"\n", y-laneGap/2, svgWidth, laneH+laneGap)
		}
		fmt.Fprintf(bw, `<text x="8" y="%d" fill="#222" font-weight="bold">%s</text>`+"\n", y+rowHeight/2+4, esc(clip(l.Name, labelWidth-16)))
		for _, s := range l.Slices {
			x0, x1 := x(s.Start), x(s.End)
			wd := math.Max(x1-x0, 1.5)
			top := y + s.Row*rowHeight + 2
			fmt.Fprintf(bw, `<g><title>%s</title>`, esc(tooltip(s, l.Name)))
			fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s" stroke="#ffffff" stroke-width="0.5"/>`,
				x0, top, wd, rowHeight-4, svgColors[s.Outcome])
			if text := clip(s.label(), wd-6); text != "" {
				fmt.Fprintf(bw, `<text x="%.1f" y="%d" fill="#ffffff">%s</text>`, x0+3, top+rowHeight/2+2, esc(text))
			}
			fmt.Fprint(bw, "</g>\n")
		}
		y += laneH + laneGap
	}

	// Legend.
	lx := float64(labelWidth)
	ly := height - legendH + 14
	for _, o := range legendOrder {
		fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="12" height="12" rx="2" fill="%s"/>`, lx, ly, svgColors[o])
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" fill="#333">%s</text>`+"\n", lx+16, ly+10, esc(string(o)))
		lx += 16 + float64(len(o))*charWidth + 22
	}
	fmt.Fprint(bw, "</svg>\n")
	return bw.Flush()
}

func tooltip(s Slice, lane string) string {
	t := fmt.Sprintf("%s, attempt %d, on %s\n%s in %s (at %s)", s.Task, s.Attempt, lane, s.Outcome,
		fmtDuration(s.End-s.Start), fmtDuration(s.Start))
	if s.Error != "" {
		t += "\n" + s.Error
	}
	return t
}

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
