// Package reporttest reads back what a report page drew in a browser, for tests
// that compare it with what the database or the lab holds: the page's own
// account (window.tipReport), checked against the canvases' pixels and the
// tables in the DOM.
package reporttest

import (
	"context"
	"fmt"

	"github.com/tip-project/tip/internal/browser"
)

// Rendered is what a report page drew.
type Rendered struct {
	Ready  bool     `json:"ready"`  // the page's script ran to its end
	Errors []string `json:"errors"` // the page's own (window.onerror, a chart that failed) and the browser's
	Charts []Chart  `json:"charts"`
	Grids  []Grid   `json:"grids"`
	// Empty lists the sections and panels that said they have no data.
	Empty []string `json:"empty"`
	// Requests are the URLs the page loaded: itself only, for a page that
	// needs no network.
	Requests []string `json:"-"`
}

// Chart is one chart as Chart.js holds it after drawing.
type Chart struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Title      string    `json:"title"`
	Horizontal bool      `json:"horizontal"`
	Labels     []string  `json:"labels"` // a bar chart's categories
	X          []float64 `json:"x"`      // a time chart's times, Unix ms
	Datasets   []Dataset `json:"datasets"`
	// Width and Height are the canvas's, in pixels; Painted counts its pixels
	// that are not transparent: 0 for a chart never drawn.
	Width   int `json:"width"`
	Height  int `json:"height"`
	Painted int `json:"painted"`
}

// Dataset is one series of a chart.
type Dataset struct {
	Label  string     `json:"label"`
	Axis   string     `json:"axis"`
	Values []*float64 `json:"values"` // nil: a gap
	// Points counts the chart elements (points, bars) made for it and Drawn
	// those placed on the canvas (a gap is not).
	Points  int  `json:"points"`
	Drawn   int  `json:"drawn"`
	Visible bool `json:"visible"`
}

// Grid is a table of coloured cells (the overlap heat map, the health strip)
// as the DOM holds it.
type Grid struct {
	ID      string     `json:"id"`
	Class   string     `json:"class"`
	Columns []string   `json:"columns"`
	Rows    []string   `json:"rows"`
	Cells   [][]string `json:"cells"`  // each cell's text, by row
	Values  [][]string `json:"values"` // each cell's data-value
	Colored int        `json:"colored"`
}

// Chart returns the chart with an id, or nil.
func (r *Rendered) Chart(id string) *Chart {
	for i := range r.Charts {
		if r.Charts[i].ID == id {
			return &r.Charts[i]
		}
	}
	return nil
}

// Grid returns the grid with an id, or nil.
func (r *Rendered) Grid(id string) *Grid {
	for i := range r.Grids {
		if r.Grids[i].ID == id {
			return &r.Grids[i]
		}
	}
	return nil
}

// readJS collects the page's account and adds what the canvases and the DOM show.
const readJS = `(() => {
  const r = window.tipReport;
  const painted = (canvas) => {
    if (!canvas || !canvas.width || !canvas.height) return 0;
    const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
    return n;
  };
  const text = (e) => e.textContent.trim();
  return {
    ready: r.ready,
    errors: r.errors.slice(),
    empty: r.empty.slice(),
    charts: r.charts.map((c) => Object.assign({}, c, {painted: painted(document.getElementById(c.id))})),
    grids: Array.from(document.querySelectorAll("table.heatmap, table.strip")).map((t) => ({
      id: t.id,
      class: t.className,
      columns: Array.from(t.tHead.rows[0].cells).slice(1).map(text),
      rows: Array.from(t.tBodies[0].rows).map((row) => text(row.cells[0])),
      cells: Array.from(t.tBodies[0].rows).map((row) => Array.from(row.querySelectorAll("td.cell")).map(text)),
      values: Array.from(t.tBodies[0].rows).map((row) => Array.from(row.querySelectorAll("td.cell")).map((c) => c.dataset.value || "")),
      colored: t.querySelectorAll("td.cell[style*=background]").length,
    })),
  };
})()`

// ReadRendered opens a report file in the browser, waits for its script to
// finish, and returns what it drew; the browser's errors and requests during
// the visit are included.
func ReadRendered(ctx context.Context, b *browser.Browser, path string) (Rendered, error) {
	var r Rendered
	before, beforeReqs := len(b.Errors()), len(b.Requests())
	if err := b.Navigate(ctx, browser.FileURL(path)); err != nil {
		return r, err
	}
	if err := b.WaitFor(ctx, `window.tipReport && window.tipReport.ready`); err != nil {
		// the script died before its end: its errors say why
		var errs []string
		_ = b.Eval(ctx, `window.tipReport ? window.tipReport.errors : ["no window.tipReport"]`, &errs)
		return r, fmt.Errorf("report %s never got ready: %w (errors: %q)", path, err, append(errs, b.Errors()[before:]...))
	}
	if err := b.Eval(ctx, readJS, &r); err != nil {
		return r, fmt.Errorf("report %s: %w", path, err)
	}
	r.Errors = append(r.Errors, b.Errors()[before:]...)
	r.Requests = b.Requests()[beforeReqs:]
	return r, nil
}
