package storage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tip-project/tip/flux"
)

// FluxVerdict is one triage's outcome for a domain.
type FluxVerdict struct {
	Assessment flux.Assessment
	Origin     string    // the module or person that asked
	At         time.Time // when the second resolution was taken
}

// RecordTriage stores triage verdicts: a domain's row keeps its first origin and
// counts its triages.
func (db *DB) RecordTriage(ctx context.Context, vs []FluxVerdict) error {
	if len(vs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, v := range vs {
		feats, err := json.Marshal(v.Assessment.Features)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO flux_domains (domain, verdict, score, reason, features, origin, triaged_at, seen_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
			ON CONFLICT (domain) DO UPDATE SET verdict = excluded.verdict, score = excluded.score, reason = excluded.reason,
			    features = excluded.features, triaged_at = excluded.triaged_at, triages = flux_domains.triages + 1,
			    seen_at = greatest(flux_domains.seen_at, excluded.seen_at)
			WHERE flux_domains.triaged_at < excluded.triaged_at`,
			v.Assessment.Domain, string(v.Assessment.Verdict), v.Assessment.Score, v.Assessment.Reason, feats, v.Origin, v.At)
	}
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record triage: %w", err)
	}
	return nil
}

// DueForTriage notes that domains were seen again (now) and returns those to
// triage: never triaged, or triaged before coolDown ago and not watched by a
// running monitor. The order is the input's.
func (db *DB) DueForTriage(ctx context.Context, domains []string, now time.Time, coolDown time.Duration) ([]string, error) {
	if len(domains) == 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `
		WITH seen AS (
		    UPDATE flux_domains SET seen_at = greatest(seen_at, $2) WHERE domain = ANY($1)
		    RETURNING domain, triaged_at, monitor)
		SELECT domain FROM seen
		 WHERE triaged_at > $2 - $3::interval OR monitor IN ('watching', 'stable', 'paused')`,
		domains, now, coolDown)
	if err != nil {
		return nil, fmt.Errorf("due for triage: %w", err)
	}
	skip, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("due for triage: %w", err)
	}
	taken := make(map[string]bool, len(domains))
	for _, d := range skip {
		taken[d] = true
	}
	var due []string
	for _, d := range domains {
		if !taken[d] {
			taken[d] = true
			due = append(due, d)
		}
	}
	return due, nil
}

// FluxWrite is one monitor check to record: the observation and, when it
// changed, the monitor's state and summary.
type FluxWrite struct {
	Obs     flux.Observation
	State   string        // "" leaves the monitor's state as it is
	Summary *flux.Summary // nil leaves the summary as it is
	Late    time.Duration // how long after it was due the check ran
	// Due is when the check was due: one check is recorded per due time (zero:
	// unconstrained), so a check re-run after its worker died adds nothing.
	Due time.Time
}

// RecordFluxChecks stores monitor checks in one transaction: the observations
// (a retried write inserts nothing twice: they are keyed by domain and due time,
// a check without one by its own time, so a re-run of the same due check is not
// recorded), the passive DNS of each newly inserted one (its addresses into
// flux_ips, its NS names and their addresses into flux_ns and flux_ns_addrs),
// and the monitors' states and summaries.
func (db *DB) RecordFluxChecks(ctx context.Context, ws []FluxWrite) error {
	if len(ws) == 0 {
		return nil
	}
	_, err := db.recordFluxChecks(ctx, ws, nil)
	return err
}

// recordFluxChecks is RecordFluxChecks, with also in its transaction (when not
// nil); it returns how many A and AAAA addresses each domain showed for the
// first time.
func (db *DB) recordFluxChecks(ctx context.Context, ws []FluxWrite, also func(pgx.Tx) error) (map[string]int, error) {
	var r fluxRows
	var lo, hi time.Time // the due times' span: the partitions written
	for _, w := range ws {
		o := w.Obs
		raw, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		r.domains, r.ats, r.statuses, r.data = append(r.domains, o.Domain), append(r.ats, o.At.UTC()), append(r.statuses, string(o.Status)), append(r.data, raw)
		r.addrs = append(r.addrs, int32(len(o.A)+len(o.AAAA)))
		r.lates = append(r.lates, int32(min(w.Late.Milliseconds(), 1<<31-1)))
		slot := o.At
		if w.Due.IsZero() {
			r.dues = append(r.dues, nil)
		} else {
			due := w.Due.UTC()
			r.dues, slot = append(r.dues, &due), due
		}
		if lo.IsZero() || slot.Before(lo) {
			lo = slot
		}
		if slot.After(hi) {
			hi = slot
		}
		if ttl, ok := o.MinTTL(); ok {
			t := int32(min(ttl, 1<<31-1))
			r.ttls = append(r.ttls, &t)
		} else {
			r.ttls = append(r.ttls, nil)
		}
	}
	fresh, err := db.insertFluxChecks(ctx, ws, r, also)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" /* check_violation */ && strings.Contains(pgErr.Message, "no partition") {
		// a due time past the weeks made ahead (the retention run makes them):
		// make its week and write again
		if _, err = db.EnsureFluxPartitions(ctx, lo, hi); err == nil {
			fresh, err = db.insertFluxChecks(ctx, ws, r, also)
		}
	}
	return fresh, err
}

// fluxRows are the columns of the observations RecordFluxChecks writes.
type fluxRows struct {
	domains, statuses []string
	ats               []time.Time
	addrs, lates      []int32
	ttls              []*int32
	data              [][]byte
	dues              []*time.Time
}

// insertFluxChecks is RecordFluxChecks' transaction: the observations, the
// passive DNS of their answers (flux_ips, flux_ns, flux_ns_addrs), the
// monitors' states, and also's statements.
func (db *DB) insertFluxChecks(ctx context.Context, ws []FluxWrite, r fluxRows, also func(pgx.Tx) error) (map[string]int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("record flux checks: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	rows, err := tx.Query(ctx, `
		WITH obs AS (
		    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::int[], $5::int[], $6::jsonb[], $7::int[], $8::timestamptz[])
		        AS o(domain, at, status, addrs, min_ttl, data, late_ms, due)),
		ins AS (
		    INSERT INTO flux_observations (domain, at, status, addrs, min_ttl, data, late_ms, due)
		    SELECT domain, at, status, addrs, min_ttl, data, late_ms, coalesce(due, at) FROM obs ON CONFLICT DO NOTHING
		    RETURNING domain, at, data),
		ips AS (
		    SELECT ins.domain, ins.at, (r->>'addr')::inet AS ip, 'a' AS role,
		           coalesce((r->>'asn')::bigint, 0) AS asn, coalesce(r->>'cc', '') AS cc
		      FROM ins, jsonb_array_elements(coalesce(ins.data->'a', '[]') || coalesce(ins.data->'aaaa', '[]')) r
		    UNION ALL
		    SELECT ins.domain, ins.at, (r->>'addr')::inet, 'ns', coalesce((r->>'asn')::bigint, 0), coalesce(r->>'cc', '')
		      FROM ins, jsonb_array_elements(coalesce(ins.data->'ns', '[]')) ns, jsonb_array_elements(coalesce(ns->'addrs', '[]')) r),
		ns AS (
		    SELECT ins.domain, ins.at, lower(ns->>'name') AS ns, coalesce(ns->'addrs', '[]') AS addrs
		      FROM ins, jsonb_array_elements(coalesce(ins.data->'ns', '[]')) ns WHERE coalesce(ns->>'name', '') <> ''),
		ns_names AS (
		    INSERT INTO flux_ns (domain, ns, first_seen, last_seen, seen)
		    SELECT domain, ns, min(at), max(at), count(*) FROM ns GROUP BY domain, ns
		    ON CONFLICT (domain, ns) DO UPDATE SET
		        first_seen = least(flux_ns.first_seen, excluded.first_seen),
		        last_seen = greatest(flux_ns.last_seen, excluded.last_seen),
		        seen = flux_ns.seen + excluded.seen),
		ns_addrs AS (
		    INSERT INTO flux_ns_addrs (ns, ip, first_seen, last_seen, seen)
		    SELECT ns.ns, (r->>'addr')::inet, min(ns.at), max(ns.at), count(*) FROM ns, jsonb_array_elements(ns.addrs) r GROUP BY 1, 2
		    ON CONFLICT (ns, ip) DO UPDATE SET
		        first_seen = least(flux_ns_addrs.first_seen, excluded.first_seen),
		        last_seen = greatest(flux_ns_addrs.last_seen, excluded.last_seen),
		        seen = flux_ns_addrs.seen + excluded.seen)
		INSERT INTO flux_ips (domain, ip, role, asn, country, first_seen, last_seen, seen)
		SELECT domain, ip, role, max(asn), max(cc), min(at), max(at), count(*) FROM ips GROUP BY domain, ip, role
		ON CONFLICT (domain, ip, role) DO UPDATE SET
		    first_seen = least(flux_ips.first_seen, excluded.first_seen),
		    last_seen = greatest(flux_ips.last_seen, excluded.last_seen),
		    seen = flux_ips.seen + excluded.seen,
		    asn = CASE WHEN excluded.asn <> 0 THEN excluded.asn ELSE flux_ips.asn END,
		    country = CASE WHEN excluded.country <> '' THEN excluded.country ELSE flux_ips.country END
		RETURNING flux_ips.domain, role = 'a' AND xmax = 0`,
		r.domains, r.ats, r.statuses, r.addrs, r.ttls, r.data, r.lates, r.dues)
	if err != nil {
		return nil, fmt.Errorf("record flux checks: %w", err)
	}
	fresh := map[string]int{}
	var domain string
	var isNew bool
	if _, err := pgx.ForEachRow(rows, []any{&domain, &isNew}, func() error {
		if isNew {
			fresh[domain]++
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("record flux checks: %w", err)
	}
	b := &pgx.Batch{}
	for _, w := range ws {
		if w.State == "" && w.Summary == nil {
			continue
		}
		var sum []byte
		if w.Summary != nil {
			if sum, err = json.Marshal(w.Summary); err != nil {
				return nil, err
			}
		}
		b.Queue(`UPDATE flux_domains SET monitor = coalesce(nullif($2, ''), monitor), summary = coalesce($3, summary)
			WHERE domain = $1`, w.Obs.Domain, w.State, sum)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, fmt.Errorf("record flux checks: %w", err)
		}
	}
	if also != nil {
		if err := also(tx); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("record flux checks: %w", err)
	}
	return fresh, nil
}

// SetFluxMonitor records a monitor's state (and its summary when not nil): a
// monitor starting (its domain gets a row if triage never made one), pausing,
// resuming or ending.
func (db *DB) SetFluxMonitor(ctx context.Context, domain, state string, summary *flux.Summary, at time.Time) error {
	return setFluxMonitor(ctx, db.pool, domain, state, summary, at)
}

func setFluxMonitor(ctx context.Context, ex execer, domain, state string, summary *flux.Summary, at time.Time) error {
	var sum []byte
	if summary != nil {
		var err error
		if sum, err = json.Marshal(summary); err != nil {
			return err
		}
	}
	_, err := ex.Exec(ctx, `
		INSERT INTO flux_domains (domain, verdict, origin, triaged_at, seen_at, monitor, monitor_since, summary)
		VALUES ($1, 'watched', 'cli', $3, $3, $2, $3, $4)
		ON CONFLICT (domain) DO UPDATE SET monitor = $2,
		    monitor_since = CASE WHEN flux_domains.monitor IS NULL OR flux_domains.monitor = 'stopped' AND $2 <> 'stopped'
		                         THEN $3 ELSE flux_domains.monitor_since END,
		    monitor_ended = CASE WHEN $2 = 'stopped' THEN $3 END,
		    summary = coalesce($4, flux_domains.summary)`,
		domain, state, at, sum)
	if err != nil {
		return fmt.Errorf("flux monitor %s: %w", domain, err)
	}
	return nil
}

// FluxDomain is a domain's row as `tip flux list` and `show` print it.
type FluxDomain struct {
	Domain       string          `json:"domain"`
	Verdict      string          `json:"verdict"`
	Score        float64         `json:"score"`
	Reason       string          `json:"reason,omitempty"`
	Features     json.RawMessage `json:"features,omitempty"`
	Origin       string          `json:"origin,omitempty"`
	TriagedAt    time.Time       `json:"triaged_at"`
	Triages      int             `json:"triages"`
	SeenAt       time.Time       `json:"seen_at"`
	Monitor      string          `json:"monitor,omitempty"`
	MonitorSince *time.Time      `json:"monitor_since,omitempty"`
	MonitorEnded *time.Time      `json:"monitor_ended,omitempty"`
	Summary      *flux.Summary   `json:"summary,omitempty"` // the monitor's, as last recorded (every few checks)
	Network      string          `json:"network,omitempty"`
	// IPs and ASNs count the A and AAAA addresses recorded behind the domain so
	// far, and their origin ASes: current after every check.
	IPs  int `json:"ips"`
	ASNs int `json:"asns"`
}

const fluxDomainColumns = `domain, verdict, score, reason, features, origin, triaged_at, triages, seen_at,
	coalesce(monitor, ''), monitor_since, monitor_ended, summary, coalesce(network, ''),
	(SELECT count(*) FROM flux_ips i WHERE i.domain = flux_domains.domain AND i.role = 'a'),
	(SELECT count(DISTINCT nullif(i.asn, 0)) FROM flux_ips i WHERE i.domain = flux_domains.domain AND i.role = 'a')`

func scanFluxDomain(row pgx.Row) (FluxDomain, error) {
	var d FluxDomain
	var sum []byte
	err := row.Scan(&d.Domain, &d.Verdict, &d.Score, &d.Reason, &d.Features, &d.Origin, &d.TriagedAt, &d.Triages, &d.SeenAt,
		&d.Monitor, &d.MonitorSince, &d.MonitorEnded, &sum, &d.Network, &d.IPs, &d.ASNs)
	if err == nil && sum != nil {
		d.Summary = &flux.Summary{}
		err = json.Unmarshal(sum, d.Summary)
	}
	return d, err
}

// FluxDomains lists triaged and monitored domains, monitored ones first, then by
// name. monitor filters by monitor state ("" all, "any" every monitored domain);
// verdict filters by verdict ("" all).
func (db *DB) FluxDomains(ctx context.Context, monitor, verdict string) ([]FluxDomain, error) {
	return db.fluxDomains(ctx, "flux domains", `
		WHERE ($1 = '' OR $1 = 'any' AND monitor IS NOT NULL OR monitor = $1) AND ($2 = '' OR verdict = $2)
		ORDER BY monitor IS NULL, domain`, monitor, verdict)
}

// fluxDomains reads the flux_domains rows that the rest of a query (where,
// order, limit) picks; what names the read in errors.
func (db *DB) fluxDomains(ctx context.Context, what, rest string, args ...any) ([]FluxDomain, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+fluxDomainColumns+` FROM flux_domains `+rest, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FluxDomain, error) { return scanFluxDomain(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// ErrNoFluxDomain is returned for a domain TIP never triaged nor monitored.
var ErrNoFluxDomain = errors.New("domain not known to the flux module")

// FluxDomainRow reads one domain's row.
func (db *DB) FluxDomainRow(ctx context.Context, domain string) (FluxDomain, error) {
	d, err := scanFluxDomain(db.pool.QueryRow(ctx, `SELECT `+fluxDomainColumns+` FROM flux_domains WHERE domain = $1`, domain))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("%s: %w", domain, ErrNoFluxDomain)
	}
	return d, err
}

// FluxObservations are a domain's recorded observations, oldest first, at most
// limit of the newest (all when limit <= 0).
func (db *DB) FluxObservations(ctx context.Context, domain string, limit int) ([]flux.Observation, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := db.pool.Query(ctx, `SELECT data FROM (
		SELECT at, data FROM flux_observations WHERE domain = $1 ORDER BY at DESC LIMIT $2) o ORDER BY at`, domain, limit)
	if err != nil {
		return nil, fmt.Errorf("flux observations %s: %w", domain, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (flux.Observation, error) {
		var o flux.Observation
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return o, err
		}
		return o, json.Unmarshal(raw, &o)
	})
	if err != nil {
		return nil, fmt.Errorf("flux observations %s: %w", domain, err)
	}
	return out, nil
}

// FluxNetwork is a group of monitored domains sharing addresses: one botnet.
type FluxNetwork struct {
	Name    string   `json:"name"` // its first domain by name
	Domains []string `json:"domains"`
	IPs     int      `json:"ips"`
	ASNs    int      `json:"asns"`
}

// fluxAgentsSQL selects the flux agents (domain, ip, asn): the addresses seen
// behind the domains judged flux or monitored, their name servers' addresses too
// when those rotate (double flux). A single-flux domain's name servers are
// ordinary hosting, often shared by unrelated zones: neither bots nor a link
// between botnets.
const fluxAgentsSQL = `
	SELECT d.domain, i.ip, i.asn FROM flux_domains d JOIN flux_ips i USING (domain)
	 WHERE (d.verdict IN ('flux', 'double-flux') OR d.monitor IS NOT NULL)
	   AND (i.role = 'a' OR d.verdict = 'double-flux' OR coalesce((d.summary->>'double_flux')::boolean, false))`

// fluxAgentAddrsSQL selects every flux agent's address once, as the text form of
// an inet (for TIP's own blacklist source, RefreshFluxAgents).
const fluxAgentAddrsSQL = `SELECT DISTINCT host(ip) FROM (` + fluxAgentsSQL + `) a`

// UpdateFluxNetworks groups the domains judged flux (or monitored) into networks:
// two domains are in one network when a flux agent (fluxAgentsSQL) was seen
// behind both, transitively. Each domain's network is recorded (a domain sharing
// nothing is a network of its own) and the networks returned, largest first.
func (db *DB) UpdateFluxNetworks(ctx context.Context) ([]FluxNetwork, error) {
	rows, err := db.pool.Query(ctx, fluxAgentsSQL+` ORDER BY d.domain`)
	if err != nil {
		return nil, fmt.Errorf("flux networks: %w", err)
	}
	parent := map[string]string{}
	var find func(string) string
	find = func(d string) string {
		for parent[d] != d {
			parent[d] = parent[parent[d]]
			d = parent[d]
		}
		return d
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		if rb < ra { // the root is the first domain by name: a stable network name
			ra, rb = rb, ra
		}
		parent[rb] = ra
	}
	owner := map[netip.Addr]string{}
	asnOf := map[netip.Addr]int64{}
	for rows.Next() {
		var d string
		var ip netip.Addr
		var asn int64
		if err := rows.Scan(&d, &ip, &asn); err != nil {
			rows.Close()
			return nil, fmt.Errorf("flux networks: %w", err)
		}
		if _, ok := parent[d]; !ok {
			parent[d] = d
		}
		if o, ok := owner[ip]; ok {
			union(o, d)
		} else {
			owner[ip] = d
		}
		asnOf[ip] = asn
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("flux networks: %w", err)
	}
	byRoot := map[string]*FluxNetwork{}
	asns := map[string]map[int64]bool{}
	var names, nets []string
	for d := range parent {
		names = append(names, d)
	}
	slices.Sort(names)
	for _, d := range names {
		r := find(d)
		n := byRoot[r]
		if n == nil {
			n = &FluxNetwork{Name: r}
			byRoot[r], asns[r] = n, map[int64]bool{}
		}
		n.Domains = append(n.Domains, d)
		nets = append(nets, r)
	}
	for ip, d := range owner {
		r := find(d)
		byRoot[r].IPs++
		if a := asnOf[ip]; a != 0 && !asns[r][a] {
			asns[r][a] = true
			byRoot[r].ASNs++
		}
	}
	if _, err := db.pool.Exec(ctx, `
		UPDATE flux_domains d SET network = n.network
		  FROM unnest($1::text[], $2::text[]) AS n(domain, network)
		 WHERE d.domain = n.domain AND d.network IS DISTINCT FROM n.network`, names, nets); err != nil {
		return nil, fmt.Errorf("flux networks: %w", err)
	}
	out := make([]FluxNetwork, 0, len(byRoot))
	for _, n := range byRoot {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b FluxNetwork) int {
		if c := len(b.Domains) - len(a.Domains); c != 0 {
			return c
		}
		if c := b.IPs - a.IPs; c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

// FluxNetworks reads the networks as the last UpdateFluxNetworks recorded them,
// largest first.
func (db *DB) FluxNetworks(ctx context.Context) ([]FluxNetwork, error) {
	rows, err := db.pool.Query(ctx, `
		WITH agents AS (`+fluxAgentsSQL+`)
		SELECT d.network, array_agg(DISTINCT d.domain ORDER BY d.domain), count(DISTINCT a.ip), count(DISTINCT nullif(a.asn, 0))
		  FROM flux_domains d LEFT JOIN agents a USING (domain)
		 WHERE d.network IS NOT NULL
		 GROUP BY d.network
		 ORDER BY count(DISTINCT d.domain) DESC, count(DISTINCT a.ip) DESC, d.network`)
	if err != nil {
		return nil, fmt.Errorf("flux networks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FluxNetwork, error) {
		var n FluxNetwork
		err := r.Scan(&n.Name, &n.Domains, &n.IPs, &n.ASNs)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("flux networks: %w", err)
	}
	return out, nil
}

// NewListedDomains returns up to limit domains that blacklists listed for the
// first time at or after since (indicators of type domain first seen then), in
// the order they were first seen.
func (db *DB) NewListedDomains(ctx context.Context, since time.Time, limit int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT value FROM indicators
		 WHERE type = 'domain' AND first_seen >= $1
		 ORDER BY first_seen, id LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("new listed domains: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("new listed domains: %w", err)
	}
	return out, nil
}
