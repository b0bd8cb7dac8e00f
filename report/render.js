// Draws the report's charts with Chart.js from the page's JSON data (the
// element #tip-data), then says in window.tipReport what it drew: each chart's
// datasets with their values and how many of their points or bars were placed
// on the canvas, the tables of coloured cells, the sections without data, and
// every error. Times are Unix milliseconds on linear axes, shown in UTC.
(function () {
  "use strict";
  var report = window.tipReport;

  function fail(what, e) {
    report.errors.push(what + ": " + (e && e.message ? e.message : String(e)));
  }

  // Time ticks fall on round times: the first step (in seconds) that makes
  // at most a tick per 110 pixels.
  var steps = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000, 7776000, 31536000];

  function timeTicks(scale) {
    var span = scale.max - scale.min, room = Math.max(2, Math.floor(scale.width / 110));
    var step = steps[steps.length - 1] * 1000;
    for (var i = 0; i < steps.length; i++) {
      if (span / (steps[i] * 1000) <= room) { step = steps[i] * 1000; break; }
    }
    scale.tipStep = step;
    var ticks = [];
    for (var t = Math.ceil(scale.min / step) * step; t <= scale.max; t += step) ticks.push({value: t});
    scale.ticks = ticks;
  }

  // UTC: "11-27 07:40", "07:40:15" for steps under a minute, "11-27" for days
  function clock(ms, step) {
    var iso = new Date(ms).toISOString();
    if (step && step < 60000) return iso.slice(11, 19);
    if (step && step >= 86400000) return iso.slice(5, 10);
    return iso.slice(5, 16).replace("T", " ");
  }

  function config(spec) {
    var timed = Array.isArray(spec.x) && spec.x.length > 0;
    var horizontal = !!spec.horizontal;
    var line = spec.type === "line";
    var dense = timed && spec.x.length > 60;
    var datasets = spec.datasets.map(function (d) {
      var ds = {
        label: d.label,
        borderColor: d.color,
        backgroundColor: d.colors || d.color,
        borderWidth: line ? 2 : 0,
        data: timed ? d.values.map(function (v, i) { return {x: spec.x[i], y: v}; }) : d.values.slice()
      };
      ds[horizontal ? "xAxisID" : "yAxisID"] = d.axis;
      if (line) {
        ds.pointRadius = dense ? 0 : 2.5;
        ds.pointHitRadius = 6;
        ds.spanGaps = false;
      } else {
        ds.maxBarThickness = 48;
      }
      if (d.dashed) ds.borderDash = [6, 4];
      if (d.step) ds.stepped = "before";
      return ds;
    });

    var scales = {};
    var category = horizontal ? "y" : "x";
    if (timed) {
      var lo = spec.x[0], hi = spec.x[spec.x.length - 1];
      if (lo === hi) { lo -= 60000; hi += 60000; }
      scales[category] = {type: "linear", axis: category, min: lo, max: hi, afterBuildTicks: timeTicks,
        ticks: {callback: function (v) { return clock(v, this.tipStep); }, maxRotation: 0, autoSkip: false}};
    } else {
      // a few bars are each labelled (turned if need be); many, every so often
      var many = !horizontal && (spec.labels || []).length > 24;
      scales[category] = {type: "category", axis: category, stacked: !!spec.stacked,
        ticks: {autoSkip: many, maxRotation: many ? 0 : 45, autoSkipPadding: 12}};
    }
    spec.axes.forEach(function (a) {
      var s = {type: "linear", axis: horizontal ? "x" : "y", stacked: !!spec.stacked,
        position: horizontal ? "bottom" : (a.right ? "right" : "left"),
        title: {display: true, text: a.title},
        grid: {drawOnChartArea: !a.right},
        ticks: a.integer ? {precision: 0} : {}};
      if (a.min !== undefined && a.min !== null) s.min = a.min;
      if (a.max !== undefined && a.max !== null) s.max = a.max;
      scales[a.id] = s;
    });

    return {
      type: spec.type,
      data: {labels: spec.labels || undefined, datasets: datasets},
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: {mode: "index", intersect: false},
        scales: scales,
        plugins: {
          title: {display: true, text: spec.title, font: {size: 14}},
          legend: {position: "bottom", labels: {boxWidth: 12, boxHeight: 12}},
          tooltip: {callbacks: timed ? {title: function (items) { return items.length ? clock(items[0].parsed.x) + " UTC" : ""; }} : {}}
        }
      }
    };
  }

  // describe says what a chart holds and drew.
  function describe(spec, c) {
    var horizontal = !!spec.horizontal;
    return {
      id: spec.id,
      type: c.config.type,
      title: spec.title,
      horizontal: horizontal,
      labels: (c.data.labels || []).map(String),
      x: spec.x || [],
      width: c.width,
      height: c.height,
      datasets: c.data.datasets.map(function (ds, i) {
        var meta = c.getDatasetMeta(i);
        var drawn = 0;
        meta.data.forEach(function (el) {
          if (!el.skip && isFinite(el.x) && isFinite(el.y)) drawn++;
        });
        return {
          label: ds.label,
          axis: ds[horizontal ? "xAxisID" : "yAxisID"],
          values: ds.data.map(function (p) { return p !== null && typeof p === "object" ? p.y : p; }),
          points: meta.data.length,
          drawn: drawn,
          visible: c.isDatasetVisible(i)
        };
      })
    };
  }

  var specs = [];
  try {
    specs = JSON.parse(document.getElementById("tip-data").textContent).charts || [];
  } catch (e) {
    fail("reading the report's data", e);
  }
  specs.forEach(function (spec) {
    try {
      var canvas = document.getElementById(spec.id);
      if (!(canvas instanceof HTMLCanvasElement)) throw new Error("no canvas #" + spec.id);
      var c = new Chart(canvas, config(spec));
      if (!c.ctx) throw new Error("Chart.js could not draw on #" + spec.id);
      report.charts.push(describe(spec, c));
    } catch (e) {
      fail("chart " + spec.id, e);
    }
  });
  report.grids = Array.prototype.map.call(document.querySelectorAll("table.heatmap, table.strip"), function (t) {
    return {id: t.id, rows: t.tBodies[0].rows.length, cells: t.querySelectorAll("td.cell").length};
  });
  report.empty = Array.prototype.map.call(document.querySelectorAll("[data-empty]"), function (e) {
    return e.getAttribute("data-empty");
  });
  report.ready = true;
})();
