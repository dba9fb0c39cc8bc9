package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

func printSummary(w io.Writer, r *results) {
	if len(r.Phases) > 0 {
		fmt.Fprintf(w, "\n%d connections in %d direct conversations, %s\n", r.Conns-r.Conns%2, r.Conns/2, r.URL)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "phase\tsecs\tsent\tacked\tacked/s\terrors\tunanswered\tack p50 ms\tp90\tp99\tmax\tdelivery p50\tp99\tserver cores\tserver µs/ack\tloadgen cores\t")
		for _, p := range r.Phases {
			name := fmt.Sprintf("open %.0f/s", p.OfferedRate)
			if p.Mode == "closed" {
				name = fmt.Sprintf("closed W=%d", p.Window)
			}
			cores, us, lg := "-", "-", "-"
			if p.CPU != nil {
				cores, us, lg = fmt.Sprintf("%.2f", p.CPU.ServerCores), fmt.Sprintf("%.0f", p.CPU.ServerUSPerAck), fmt.Sprintf("%.2f", p.CPU.LoadgenCores)
			}
			fmt.Fprintf(tw, "%s\t%.1f\t%d\t%d\t%.0f\t%d\t%d\t%v\t%v\t%v\t%v\t%v\t%v\t%s\t%s\t%s\t\n", name, p.Seconds, p.Sent, p.Acked, p.AckedPerSec,
				p.Errors, p.Unanswered, p.Ack.P50, p.Ack.P90, p.Ack.P99, p.Ack.Max, p.Delivery.P50, p.Delivery.P99, cores, us, lg)
		}
		tw.Flush()
		for _, p := range r.Phases {
			if p.CPU == nil {
				continue
			}
			var names []string
			for n := range p.CPU.ByProcess {
				names = append(names, n)
			}
			slices.Sort(names)
			var parts []string
			for _, n := range names {
				parts = append(parts, fmt.Sprintf("%s %.2f", n, p.CPU.ByProcess[n]))
			}
			label := fmt.Sprintf("open %.0f/s", p.OfferedRate)
			if p.Mode == "closed" {
				label = fmt.Sprintf("closed W=%d", p.Window)
			}
			fmt.Fprintf(w, "cores by process, %s: %s\n", label, strings.Join(parts, ", "))
		}
		for _, p := range r.Phases {
			if p.Allocs != nil {
				fmt.Fprintf(w, "server allocations, %s: %.0f per acked message, %.0f bytes per acked message, %.0f GCs\n", phaseName(p), p.Allocs.PerAck, p.Allocs.BytesPerAck, p.Allocs.GCs)
				if p.Allocs.NATSInPerAck+p.Allocs.NATSOutPerAck > 0 {
					fmt.Fprintf(w, "server NATS traffic, %s: %.1f messages received and %.1f published per acked message\n", phaseName(p), p.Allocs.NATSInPerAck, p.Allocs.NATSOutPerAck)
				}
			}
		}
		for _, p := range r.Phases {
			if len(p.ErrorCodes) > 0 {
				fmt.Fprintf(w, "errors, %s/%s: %v\n", p.Mode, fmt.Sprint(p.Window, p.OfferedRate), p.ErrorCodes)
			}
		}
	}
	if p := r.Replay; p != nil {
		fmt.Fprintf(w, "\nreplay of %d missed messages (sync from the last seq received to synced), %d runs: median %v ms (min %v, max %v); with the WebSocket dial: median %v ms\n",
			p.Missed, p.Runs, p.SyncMedian, p.SyncMin, p.SyncMax, p.DialSyncMedian)
	}
	if p := r.Idle; p != nil {
		fmt.Fprintf(w, "\n%d idle connections: server RSS %.1f MiB -> %.1f MiB connected -> %.1f MiB synced: %.1f KiB per connection before sync, %.1f KiB after",
			p.Conns, p.RSSBeforeMiB, p.RSSConnectedMiB, p.RSSSyncedMiB, p.KiBPerConnBefore, p.KiBPerConnSynced)
		if p.GoroutinesPerConn > 0 {
			fmt.Fprintf(w, "; %.1f goroutines per connection", p.GoroutinesPerConn)
		}
		fmt.Fprintln(w)
	}
}

func phaseName(p *phaseResult) string {
	if p.Mode == "closed" {
		return fmt.Sprintf("closed W=%d", p.Window)
	}
	return fmt.Sprintf("open %.0f/s", p.OfferedRate)
}
