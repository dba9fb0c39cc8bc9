package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// writePlot draws two panels as a hand-written SVG: ack latency (p50 and
// p99 of each second) over the run's time, phase after phase, and the
// distribution (CDF) of ack latency of each phase; both latency axes are
// logarithmic.
func writePlot(path string, r *results) error {
	if len(r.Phases) == 0 {
		return fmt.Errorf("no load phases to plot")
	}
	const (
		W, H           = 960, 760
		left, right    = 70, 220
		top1, bottom1  = 40, 330
		top2, bottom2  = 410, 700
		plotW          = W - left - right
		fontAttr       = `font-family="sans-serif" font-size="12"`
		gridColor      = "#ddd"
		titleFontAttrs = `font-family="sans-serif" font-size="14" font-weight="bold"`
	)
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", W, H, W, H)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)

	// The latency range over both panels, in ms, rounded out to decades.
	lo, hi := math.Inf(1), 0.0
	for _, p := range r.Phases {
		for _, s := range p.Series {
			for _, v := range []ms{s.P50, s.P99} {
				if v > 0 {
					lo, hi = math.Min(lo, float64(v)/1e6), math.Max(hi, float64(v)/1e6)
				}
			}
		}
		if len(p.cdf) > 0 {
			lo, hi = math.Min(lo, float64(p.cdf[0])/1e6), math.Max(hi, float64(p.cdf[len(p.cdf)-1])/1e6)
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1000
	}
	dlo, dhi := math.Floor(math.Log10(math.Max(lo, 0.01))), math.Ceil(math.Log10(hi))
	if dhi <= dlo {
		dhi = dlo + 1
	}
	logPos := func(v float64, a, b float64) float64 { // v in ms -> a..b
		l := (math.Log10(math.Max(v, math.Pow(10, dlo))) - dlo) / (dhi - dlo)
		return a + l*(b-a)
	}
	decadeLabel := func(d float64) string {
		v := math.Pow(10, d)
		if v < 1 {
			return fmt.Sprintf("%g", v)
		}
		return fmt.Sprintf("%.0f", v)
	}

	// Panel 1: latency over time.
	total := 0.0
	for _, p := range r.Phases {
		total += math.Max(p.Seconds, float64(len(p.Series)))
	}
	xAt := func(t float64) float64 { return left + t/total*plotW }
	yAt := func(v float64) float64 { return logPos(v, bottom1, top1) }
	fmt.Fprintf(&sb, `<text x="%d" y="%d" %s>ack latency per second (p50 solid, p99 dashed), ms</text>`+"\n", left, top1-15, titleFontAttrs)
	for d := dlo; d <= dhi; d++ {
		y := yAt(math.Pow(10, d))
		fmt.Fprintf(&sb, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/><text x="%d" y="%.1f" text-anchor="end" %s>%s</text>`+"\n",
			left, left+plotW, y, y, gridColor, left-6, y+4, fontAttr, decadeLabel(d))
	}
	for s := 0.0; s <= total; s += niceStep(total) {
		x := xAt(s)
		fmt.Fprintf(&sb, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s"/><text x="%.1f" y="%d" text-anchor="middle" %s>%.0f s</text>`+"\n",
			x, x, top1, bottom1, gridColor, x, bottom1+16, fontAttr, s)
	}
	off := 0.0
	for i, p := range r.Phases {
		c := colors[i%len(colors)]
		for _, q := range []struct {
			get  func(second) ms
			dash string
		}{{func(s second) ms { return s.P50 }, ""}, {func(s second) ms { return s.P99 }, ` stroke-dasharray="5,3"`}} {
			var pts []string
			for _, s := range p.Series {
				if v := q.get(s); v > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(off+s.T), yAt(float64(v)/1e6)))
				}
			}
			fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n", c, q.dash, strings.Join(pts, " "))
		}
		if i > 0 {
			x := xAt(off)
			fmt.Fprintf(&sb, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999" stroke-dasharray="2,2"/>`+"\n", x, x, top1, bottom1)
		}
		off += math.Max(p.Seconds, float64(len(p.Series)))
	}
	fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top1, plotW, bottom1-top1)

	// Panel 2: CDF.
	xc := func(v float64) float64 { return logPos(v, left, left+plotW) }
	yc := func(f float64) float64 { return bottom2 - f*(bottom2-top2) }
	fmt.Fprintf(&sb, `<text x="%d" y="%d" %s>ack latency distribution (fraction of acks within x ms)</text>`+"\n", left, top2-15, titleFontAttrs)
	for d := dlo; d <= dhi; d++ {
		x := xc(math.Pow(10, d))
		fmt.Fprintf(&sb, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s"/><text x="%.1f" y="%d" text-anchor="middle" %s>%s ms</text>`+"\n",
			x, x, top2, bottom2, gridColor, x, bottom2+16, fontAttr, decadeLabel(d))
	}
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
		y := yc(f)
		fmt.Fprintf(&sb, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/><text x="%d" y="%.1f" text-anchor="end" %s>%g</text>`+"\n",
			left, left+plotW, y, y, gridColor, left-6, y+4, fontAttr, f)
	}
	for i, p := range r.Phases {
		d := p.cdf
		if len(d) == 0 {
			continue
		}
		if !slices.IsSorted(d) {
			slices.Sort(d)
		}
		var pts []string
		const steps = 400
		for k := 0; k <= steps; k++ {
			idx := min(len(d)-1, k*(len(d)-1)/steps)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xc(float64(d[idx])/1e6), yc(float64(idx+1)/float64(len(d)))))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colors[i%len(colors)], strings.Join(pts, " "))
	}
	fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top2, plotW, bottom2-top2)

	// Legend.
	for i, p := range r.Phases {
		y := top1 + 10 + i*36
		label := fmt.Sprintf("open %.0f/s", p.OfferedRate)
		if p.Mode == "closed" {
			label = fmt.Sprintf("closed W=%d", p.Window)
		}
		fmt.Fprintf(&sb, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d" %s>%s</text>`+"\n",
			W-right+15, W-right+35, y, y, colors[i%len(colors)], W-right+42, y+4, fontAttr, label)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" %s fill="#555">%.0f acked/s, p50 %v p99 %v ms</text>`+"\n",
			W-right+42, y+18, `font-family="sans-serif" font-size="10"`, p.AckedPerSec, p.Ack.P50, p.Ack.P99)
	}
	fmt.Fprintf(&sb, `<text x="%d" y="%d" %s fill="#555">seqchat loadgen, %d connections, %s</text>`+"\n", left, H-20, fontAttr, r.Conns-r.Conns%2, r.Started.Format(time.RFC3339))
	sb.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func niceStep(total float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600} {
		if total/s <= 12 {
			return s
		}
	}
	return 1200
}
