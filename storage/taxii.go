package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tip-project/tip/export"
)

// TIP's TAXII 2.1 collections (package taxii serves them), by key.
const (
	// TAXIIIndicators holds every listed indicator scoring at least the
	// minimum, and the revocation of each that TIP stops standing by.
	TAXIIIndicators = "indicators"
	// TAXIIOwnSources holds the indicators TIP's own sources list (every source
	// named tip-*: tip-spamtrap-senders, tip-flux-agents), whatever their score.
	TAXIIOwnSources = "tip-sources"
	// TAXIIFluxNetworks holds the fast-flux networks: an infrastructure each,
	// the domains and agents' addresses it consists of, and the relationships.
	TAXIIFluxNetworks = "flux-networks"
)

// TAXIICollections are the collections' keys.
var TAXIICollections = []string{TAXIIIndicators, TAXIIOwnSources, TAXIIFluxNetworks}

// What a sync publishes and when:
//
//   - An indicator is published while a source lists it, unsuppressed (no
//     allowlist or analyst allows it, not every listing is a false positive),
//     and it scores at least the minimum or an own source lists it; once
//     published, it stays until its score falls taxiiScoreSlack below the
//     minimum, so a score hovering at the threshold does not revoke and
//     republish it at each refresh. It enters TAXIIIndicators when it scores
//     the minimum, TAXIIOwnSources when an own source lists it.
//   - When it stops being published, every collection holding it gets its
//     revocation. Revoking is for good (STIX 2.1): listed again, it is a new
//     object with a new id (export.STIXIndicatorID's episode).
//   - A published indicator gets a new version, in every collection holding it,
//     when what it says changes (its sources, categories, references, marking),
//     when its confidence moves by taxiiConfidenceStep or more, and when half
//     its validity has passed (export.STIXOptions.Validity: a version is valid
//     until its score would decay below the minimum were its sources to drop it
//     at the version's time; a client that stops hearing from TIP lets it
//     expire).
//   - A flux network's infrastructure gets a new version when its domains,
//     agents, autonomous systems or (to the hour) sightings change; the
//     network gone (merged into another, say), it and its relationships are
//     revoked. Observables (domains, addresses) are added once.
const (
	taxiiScoreSlack     = 0.05
	taxiiConfidenceStep = 5
	// taxiiRecheck is how often an indicator pass runs when nothing changed
	// what is listed: often enough to renew validities on time.
	taxiiRecheck = time.Hour
	// taxiiKeepSuperseded and taxiiKeepRevoked are how long a superseded
	// version and a revocation stay in a collection after they were added.
	taxiiKeepSuperseded = 24 * time.Hour
	taxiiKeepRevoked    = 30 * 24 * time.Hour
	// taxiiChunk is how many objects one transaction of a sync publishes.
	taxiiChunk = 2000
)

// taxiiSyncLock serialises syncs ("tiptaxi").
const taxiiSyncLock int64 = 0x7469707461786900

// TAXIIOptions configure a sync.
type TAXIIOptions struct {
	// MinScore is the score TAXIIIndicators' indicators reach.
	MinScore float64
	// Force runs the indicator pass even when nothing listed changed.
	Force bool
}

// TAXIISynced counts what a sync added.
type TAXIISynced struct {
	Versions int `json:"versions"` // versions added to collections (a version in two collections counts twice)
	Revoked  int `json:"revoked"`  // objects revoked
}

// SyncTAXII brings the TAXII collections up to what TIP knows now: new objects,
// new versions, revocations (see the rules above), then prunes what is kept no
// longer. Syncs take turns (an advisory lock); each transaction of one stamps
// the versions it adds with one time, both their version (modified) and their
// date added, later than every stamp before. Cheap when nothing changed: the
// indicators are compared only when a listing change, an override or an
// allowlist change was recorded since the last pass (ExportVersion), or an
// hour has passed.
func (db *DB) SyncTAXII(ctx context.Context, opts TAXIIOptions) (TAXIISynced, error) {
	var res TAXIISynced
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("taxii sync: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, taxiiSyncLock); err != nil {
		return res, fmt.Errorf("taxii sync: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, taxiiSyncLock) //nolint:errcheck

	var key string
	var minScore *float64
	var indicatorsAt *time.Time
	err = conn.QueryRow(ctx, `
		WITH ins AS (INSERT INTO taxii_sync (id, stamp) VALUES (1, '1970-01-01') ON CONFLICT DO NOTHING RETURNING exports_key, min_score, indicators_at)
		SELECT * FROM ins UNION ALL SELECT exports_key, min_score, indicators_at FROM taxii_sync WHERE id = 1`).Scan(&key, &minScore, &indicatorsAt)
	if err != nil {
		return res, fmt.Errorf("taxii sync: %w", err)
	}
	version, err := db.ExportVersion(ctx)
	if err != nil {
		return res, fmt.Errorf("taxii sync: %w", err)
	}
	w := &taxiiWriter{tx: conn, res: &res}
	for _, c := range TAXIICollections {
		w.fixed(c, "identity", export.TIPIdentity, export.STIXIdentity(), export.TIPIdentityCreated)
		for _, t := range export.TLPs {
			w.fixed(c, "marking-definition", export.TLPMarking(t), export.TLPMarkingObject(t), export.TLPCreated)
		}
	}
	if opts.Force || version.Key != key || minScore == nil || *minScore != opts.MinScore ||
		indicatorsAt == nil || time.Since(*indicatorsAt) >= taxiiRecheck {
		if err := db.syncTAXIIIndicators(ctx, w, opts); err != nil {
			return res, fmt.Errorf("taxii sync: indicators: %w", err)
		}
		if err := w.flush(ctx); err != nil {
			return res, fmt.Errorf("taxii sync: %w", err)
		}
		if _, err := conn.Exec(ctx, `UPDATE taxii_sync SET exports_key = $1, min_score = $2, indicators_at = now() WHERE id = 1`,
			version.Key, opts.MinScore); err != nil {
			return res, fmt.Errorf("taxii sync: %w", err)
		}
	}
	if err := db.syncTAXIIFlux(ctx, w); err != nil {
		return res, fmt.Errorf("taxii sync: flux networks: %w", err)
	}
	if err := w.flush(ctx); err != nil {
		return res, fmt.Errorf("taxii sync: %w", err)
	}
	for _, prune := range []struct {
		where string
		keep  time.Duration
	}{{"NOT latest", taxiiKeepSuperseded}, {"latest AND revoked", taxiiKeepRevoked}} {
		if _, err := conn.Exec(ctx, `DELETE FROM taxii_objects WHERE `+prune.where+` AND date_added < now() - $1::interval`, prune.keep); err != nil {
			return res, fmt.Errorf("taxii sync: prune: %w", err)
		}
	}
	return res, nil
}

// taxiiWant is an object TIP publishes now.
type taxiiWant struct {
	key         string
	typ         string
	indicatorID int64    // an indicator's indicators.id
	members     []string // the collections it belongs in now
	digest      string   // what it says
	confidence  *int     // an indicator's
	validity    time.Duration
	created     time.Time // the first episode's created; zero: its first version's time
	id          func(episode int) string
	render      func(export.STIXVersion) []byte
}

// taxiiPublished is what TIP last published of an object (a taxii_state row).
type taxiiPublished struct {
	exists      bool
	key         string
	indicatorID *int64
	episode     int
	id          string
	created     time.Time
	modified    time.Time
	validUntil  *time.Time
	confidence  *int
	digest      string
	revoked     bool
	held        []string
	// object is the latest version, read when a step needs it (a revocation,
	// a collection joining): taxiiWriter.flush.
	object *string
}

// taxiiRow is a version to add to a collection.
type taxiiRow struct {
	collection, id, typ string
	version             time.Time
	revoked             bool
	object              string
}

// taxiiStep decides what publishing want now (nil: no longer) means, given
// what was published before, at stamp: the state to record (nil: unchanged)
// and the versions to add.
func taxiiStep(prev taxiiPublished, want *taxiiWant, stamp time.Time) (*taxiiPublished, []taxiiRow, error) {
	live := prev.exists && !prev.revoked
	if live && prev.object == nil && needsObject(prev, want) {
		return nil, nil, fmt.Errorf("%s: the latest version of %s is not in its collections", prev.key, prev.id)
	}
	if want == nil {
		if !live {
			return nil, nil, nil
		}
		obj, err := export.STIXRevoke([]byte(*prev.object), stamp)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", prev.key, err)
		}
		next := prev
		next.revoked, next.modified = true, stamp
		return &next, rowsFor(prev.held, prev.id, typeOf(prev.id), stamp, true, string(obj)), nil
	}
	if !live {
		if len(want.members) == 0 {
			return nil, nil, nil
		}
		episode := 0
		if prev.exists {
			episode = prev.episode + 1
		}
		created := stamp
		if episode == 0 && !want.created.IsZero() && !want.created.After(stamp) {
			created = want.created
		}
		next := taxiiPublished{exists: true, key: want.key, episode: episode, id: want.id(episode), created: created,
			held: slices.Sorted(slices.Values(want.members))}
		if want.indicatorID != 0 {
			next.indicatorID = &want.indicatorID
		}
		return next.version(want, stamp)
	}
	due := want.digest != prev.digest ||
		(want.validity > 0) != (prev.validUntil != nil) ||
		want.confidence != nil && (prev.confidence == nil || abs(*want.confidence-*prev.confidence) >= taxiiConfidenceStep) ||
		prev.validUntil != nil && !stamp.Before(prev.modified.Add(prev.validUntil.Sub(prev.modified)/2))
	next := prev
	for _, c := range want.members {
		if !slices.Contains(next.held, c) {
			next.held = append(slices.Clone(next.held), c)
		}
	}
	slices.Sort(next.held)
	if due {
		return next.version(want, stamp)
	}
	if len(next.held) == len(prev.held) {
		return nil, nil, nil
	}
	var added []string
	for _, c := range next.held {
		if !slices.Contains(prev.held, c) {
			added = append(added, c)
		}
	}
	return &next, rowsFor(added, prev.id, typeOf(prev.id), prev.modified, false, *prev.object), nil
}

// needsObject says whether the step from prev to want may need prev's latest
// version: to revoke it, or to add it to a collection joining.
func needsObject(prev taxiiPublished, want *taxiiWant) bool {
	if want == nil {
		return true
	}
	for _, c := range want.members {
		if !slices.Contains(prev.held, c) {
			return true
		}
	}
	return false
}

// version makes a new version of p saying want, at stamp, for every collection
// holding it.
func (p taxiiPublished) version(want *taxiiWant, stamp time.Time) (*taxiiPublished, []taxiiRow, error) {
	v := export.STIXVersion{ID: p.id, Created: p.created, Modified: stamp}
	p.validUntil = nil
	if want.validity > 0 {
		v.ValidUntil = stamp.Add(want.validity)
		p.validUntil = &v.ValidUntil
	}
	obj := string(want.render(v))
	p.modified, p.digest, p.confidence, p.object = stamp, want.digest, want.confidence, &obj
	return &p, rowsFor(p.held, p.id, want.typ, stamp, false, obj), nil
}

func rowsFor(collections []string, id, typ string, version time.Time, revoked bool, object string) []taxiiRow {
	rows := make([]taxiiRow, len(collections))
	for i, c := range collections {
		rows[i] = taxiiRow{collection: c, id: id, typ: typ, version: version, revoked: revoked, object: object}
	}
	return rows
}

// typeOf is the type of a STIX id.
func typeOf(id string) string {
	t, _, _ := strings.Cut(id, "--")
	return t
}

func abs(n int) int { return max(n, -n) }

// taxiiWriter publishes in chunks: each chunk is one transaction with one
// stamp.
type taxiiWriter struct {
	tx interface {
		Begin(context.Context) (pgx.Tx, error)
	}
	res     *TAXIISynced
	pending []taxiiPair
	fixeds  []taxiiRow
	// onStep sees each decision (the flux pass learns its networks' ids).
	onStep func(prev taxiiPublished, next *taxiiPublished)
}

type taxiiPair struct {
	prev taxiiPublished
	want *taxiiWant
}

// fixed adds an object that never changes (TIP's identity, a marking
// definition, an observable) to a collection once. version zero: the date it
// is added.
func (w *taxiiWriter) fixed(collection, typ, id string, object []byte, version time.Time) {
	w.fixeds = append(w.fixeds, taxiiRow{collection: collection, id: id, typ: typ, version: version, object: string(object)})
}

// add queues what publishing want (nil: no longer) means for prev.
func (w *taxiiWriter) add(ctx context.Context, prev taxiiPublished, want *taxiiWant) error {
	w.pending = append(w.pending, taxiiPair{prev, want})
	if len(w.pending)+len(w.fixeds) >= taxiiChunk {
		return w.flush(ctx)
	}
	return nil
}

// flush publishes what is queued in one transaction.
func (w *taxiiWriter) flush(ctx context.Context) error {
	if len(w.pending) == 0 && len(w.fixeds) == 0 {
		return nil
	}
	tx, err := w.tx.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var stamp time.Time
	if err := tx.QueryRow(ctx, `
		UPDATE taxii_sync SET stamp = greatest(date_trunc('milliseconds', clock_timestamp()), stamp + interval '1 millisecond')
		 WHERE id = 1 RETURNING stamp`).Scan(&stamp); err != nil {
		return err
	}
	stamp = stamp.UTC()
	if err := latestTAXIIObjects(ctx, tx, w.pending); err != nil {
		return err
	}
	var rows []taxiiRow
	var states []*taxiiPublished
	for _, p := range w.pending {
		next, add, err := taxiiStep(p.prev, p.want, stamp)
		if err != nil {
			return err
		}
		if w.onStep != nil {
			w.onStep(p.prev, next)
		}
		if next != nil {
			states = append(states, next)
			if next.revoked && !p.prev.revoked {
				w.res.Revoked++
			}
		}
		rows = append(rows, add...)
	}
	if err := insertTAXIIRows(ctx, tx, rows, stamp); err != nil {
		return err
	}
	fixed, err := insertTAXIIFixed(ctx, tx, w.fixeds, stamp)
	if err != nil {
		return err
	}
	if err := upsertTAXIIStates(ctx, tx, states); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	w.res.Versions += len(rows) + fixed
	w.pending, w.fixeds = w.pending[:0], w.fixeds[:0]
	return nil
}

// latestTAXIIObjects reads the latest version of the published objects whose
// step may need it (needsObject), from one collection holding it: every
// collection holding an object holds its latest version.
func latestTAXIIObjects(ctx context.Context, tx pgx.Tx, pairs []taxiiPair) error {
	var colls, ids []string
	at := map[string]int{}
	for i, p := range pairs {
		if p.prev.exists && !p.prev.revoked && p.prev.object == nil && len(p.prev.held) > 0 && needsObject(p.prev, p.want) {
			colls, ids = append(colls, p.prev.held[0]), append(ids, p.prev.id)
			at[p.prev.id] = i
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `
		SELECT o.stix_id, o.object FROM taxii_objects o
		  JOIN unnest($1::text[], $2::text[]) AS n(collection, stix_id) ON o.collection = n.collection AND o.stix_id = n.stix_id
		 WHERE o.latest`, colls, ids)
	if err != nil {
		return fmt.Errorf("taxii objects: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, obj string
		if err := rows.Scan(&id, &obj); err != nil {
			return err
		}
		pairs[at[id]].prev.object = &obj
	}
	return rows.Err()
}

func insertTAXIIRows(ctx context.Context, tx pgx.Tx, rows []taxiiRow, stamp time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	var colls, ids, types, objects []string
	var versions []time.Time
	var revoked []bool
	for _, r := range rows {
		colls, ids, types, objects = append(colls, r.collection), append(ids, r.id), append(types, r.typ), append(objects, r.object)
		versions, revoked = append(versions, r.version), append(revoked, r.revoked)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE taxii_objects o SET latest = false
		  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS n(collection, stix_id, version)
		 WHERE o.collection = n.collection AND o.stix_id = n.stix_id AND o.latest AND o.version < n.version`,
		colls, ids, versions); err != nil {
		return fmt.Errorf("taxii objects: %w", err)
	}
	// A version a collection holds already (added again to one that holds an
	// older one) keeps its date added.
	if _, err := tx.Exec(ctx, `
		INSERT INTO taxii_objects (collection, stix_id, version, date_added, type, revoked, latest, object)
		SELECT n.collection, n.stix_id, n.version, $7, n.type, n.revoked,
		       NOT EXISTS (SELECT FROM taxii_objects o WHERE o.collection = n.collection AND o.stix_id = n.stix_id AND o.version > n.version),
		       n.object
		  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::boolean[], $6::text[])
		       AS n(collection, stix_id, version, type, revoked, object)
		ON CONFLICT (collection, stix_id, version) DO NOTHING`,
		colls, ids, versions, types, revoked, objects, stamp); err != nil {
		return fmt.Errorf("taxii objects: %w", err)
	}
	return nil
}

// insertTAXIIFixed adds fixed objects to the collections not holding them
// yet, and counts those it added.
func insertTAXIIFixed(ctx context.Context, tx pgx.Tx, rows []taxiiRow, stamp time.Time) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	var colls, ids, types, objects []string
	var versions []*time.Time
	for _, r := range rows {
		colls, ids, types, objects = append(colls, r.collection), append(ids, r.id), append(types, r.typ), append(objects, r.object)
		if r.version.IsZero() {
			versions = append(versions, nil)
		} else {
			v := r.version
			versions = append(versions, &v)
		}
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO taxii_objects (collection, stix_id, version, date_added, type, latest, object)
		SELECT DISTINCT ON (n.collection, n.stix_id) n.collection, n.stix_id, coalesce(n.version, $6), $6, n.type, true, n.object
		  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]) AS n(collection, stix_id, version, type, object)
		 WHERE NOT EXISTS (SELECT FROM taxii_objects o WHERE o.collection = n.collection AND o.stix_id = n.stix_id)
		ON CONFLICT DO NOTHING`, colls, ids, versions, types, objects, stamp)
	if err != nil {
		return 0, fmt.Errorf("taxii objects: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func upsertTAXIIStates(ctx context.Context, tx pgx.Tx, states []*taxiiPublished) error {
	if len(states) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, s := range states {
		b.Queue(`
			INSERT INTO taxii_state (key, indicator_id, episode, stix_id, created, modified, valid_until, confidence, digest, revoked, held)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (key) DO UPDATE SET episode = excluded.episode, stix_id = excluded.stix_id, created = excluded.created,
			    modified = excluded.modified, valid_until = excluded.valid_until, confidence = excluded.confidence,
			    digest = excluded.digest, revoked = excluded.revoked, held = excluded.held`,
			s.key, s.indicatorID, s.episode, s.id, s.created, s.modified, s.validUntil, s.confidence, s.digest, s.revoked, s.held)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("taxii state: %w", err)
	}
	return nil
}

const taxiiStateColumns = `st.key, st.indicator_id, st.episode, st.stix_id, st.created, st.modified, st.valid_until,
	st.confidence, st.digest, st.revoked, st.held`

// taxiiStateRow scans taxiiStateColumns, all NULL when there is no state.
type taxiiStateRow struct {
	key, id, digest               *string
	indicatorID                   *int64
	episode, confidence           *int
	created, modified, validUntil *time.Time
	revoked                       *bool
	held                          []string
	object                        *string
}

func (s *taxiiStateRow) fields() []any {
	return []any{&s.key, &s.indicatorID, &s.episode, &s.id, &s.created, &s.modified, &s.validUntil,
		&s.confidence, &s.digest, &s.revoked, &s.held}
}

func (s *taxiiStateRow) published() taxiiPublished {
	if s.key == nil {
		return taxiiPublished{}
	}
	p := taxiiPublished{exists: true, key: *s.key, indicatorID: s.indicatorID, episode: *s.episode, id: *s.id,
		created: s.created.UTC(), modified: s.modified.UTC(), confidence: s.confidence, digest: *s.digest,
		revoked: *s.revoked, held: s.held}
	if s.validUntil != nil {
		u := s.validUntil.UTC()
		p.validUntil = &u
	}
	return p
}

// syncTAXIIIndicators compares every indicator that is or was published with
// what its listings say now, in one pass over a snapshot.
func (db *DB) syncTAXIIIndicators(ctx context.Context, w *taxiiWriter, opts TAXIIOptions) error {
	stix := export.STIXOptions{MinScore: opts.MinScore, HalfLife: ScoreHalfLife}
	rows, err := db.pool.Query(ctx, `
		WITH facts AS (
		    SELECT l.indicator_id,
		           1 - exp(sum(ln(1 - least(coalesce(m.weight, s.prior), 0.999999)))) AS score,
		           bool_or(s.name LIKE 'tip-%') AS own,
		           array_agg(s.name ORDER BY s.name) AS sources, array_agg(l.first_seen ORDER BY s.name) AS first_seen,
		           array_agg(coalesce(l.category, nullif(s.category, ''), '') ORDER BY s.name) AS categories,
		           array_agg(coalesce(l.malware, '') ORDER BY s.name) AS malware,
		           array_agg(coalesce(l.port, '') ORDER BY s.name) AS ports,
		           array_agg(coalesce(l.ref, '') ORDER BY s.name) AS refs,
		           array_agg(coalesce(l.listed_at, '-infinity') ORDER BY s.name) AS listed,
		           array_agg(s.tlp ORDER BY s.name) AS tlps
		      FROM source_listings l
		      JOIN sources s ON s.id = l.source_id
		      JOIN indicators i ON i.id = l.indicator_id
		      LEFT JOIN source_metrics m ON m.source = s.name
		     WHERE l.active AND NOT `+allowlistedSQL+` AND NOT `+analystAllowedSQL+` AND NOT `+falsePositiveSQL("s.name")+`
		     GROUP BY l.indicator_id),
		state AS (SELECT * FROM taxii_state WHERE indicator_id IS NOT NULL)
		SELECT i.id, i.type, i.value, i.first_seen, f.indicator_id IS NOT NULL, coalesce(f.score, 0), coalesce(f.own, false),
		       f.sources, f.first_seen, f.categories, f.malware, f.ports, f.refs, f.listed, f.tlps,
		       `+taxiiStateColumns+`
		  FROM facts f
		  FULL JOIN state st ON st.indicator_id = f.indicator_id
		  JOIN indicators i ON i.id = coalesce(f.indicator_id, st.indicator_id)
		 WHERE f.indicator_id IS NOT NULL AND (f.score >= $1::float8 - $2::float8 OR f.own) OR st.key IS NOT NULL AND NOT st.revoked`,
		opts.MinScore, taxiiScoreSlack)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                                  int64
			typ, value                          string
			firstSeen                           time.Time
			listed                              bool
			score                               float64
			own                                 bool
			sources, cats, malware, ports, refs []string
			tlps                                []string
			seen                                []time.Time
			listedAt                            []pgtype.Timestamptz
		)
		var st taxiiStateRow
		if err := rows.Scan(append([]any{&id, &typ, &value, &firstSeen, &listed, &score, &own,
			&sources, &seen, &cats, &malware, &ports, &refs, &listedAt, &tlps}, st.fields()...)...); err != nil {
			return err
		}
		prev := st.published()
		var want *taxiiWant
		live := prev.exists && !prev.revoked
		if listed && (score >= opts.MinScore || own || live && score >= opts.MinScore-taxiiScoreSlack) {
			r := export.Row{Type: typ, Value: value, Score: score, Sources: sources, FirstSeen: seen, Context: make([]export.Context, len(sources))}
			for i, src := range sources {
				c := export.Context{Source: src, Category: cats[i], Malware: malware[i], Port: ports[i], Ref: refs[i], TLP: tlps[i]}
				if listedAt[i].InfinityModifier == pgtype.Finite {
					c.Listed = listedAt[i].Time.UTC()
				}
				r.Context[i] = c
			}
			want = indicatorWant(id, firstSeen.UTC(), r, own, opts.MinScore, stix)
		}
		if want == nil && !live {
			continue
		}
		if err := w.add(ctx, prev, want); err != nil {
			return err
		}
	}
	return rows.Err()
}

// indicatorWant is an indicator to publish: in TAXIIIndicators when it scores
// the minimum, in TAXIIOwnSources when an own source lists it; nil for a type
// without a STIX pattern. Its versions are valid until its score would decay
// below the minimum, or below export.STIXValidityFloor for an own source's
// indicator scoring less (the collection of own sources has no minimum).
func indicatorWant(id int64, firstSeen time.Time, r export.Row, own bool, minScore float64, opts export.STIXOptions) *taxiiWant {
	ind := export.STIXIndicator{Row: r}
	digest := ind.Digest()
	if digest == "" {
		return nil
	}
	var members []string
	if r.Score >= minScore {
		members = append(members, TAXIIIndicators)
	}
	if own {
		members = append(members, TAXIIOwnSources)
	}
	confidence := export.STIXConfidence(r.Score)
	if own && r.Score < minScore {
		opts.MinScore = 0 // an own source's, below the minimum: valid down to the floor
	}
	return &taxiiWant{
		key: fmt.Sprintf("indicator:%d", id), typ: "indicator", indicatorID: id, members: members, digest: digest,
		confidence: &confidence, validity: opts.Validity(r.Score), created: firstSeen,
		id: func(episode int) string { return export.STIXIndicatorID(r.Type, r.Value, episode) },
		render: func(v export.STIXVersion) []byte {
			ind.ID, ind.Created, ind.Modified, ind.ValidFrom, ind.ValidUntil = v.ID, v.Created, v.Modified, v.Created, v.ValidUntil
			b, _ := ind.Object()
			return b
		},
	}
}

// TAXIIFluxNetworks reads the flux networks as TAXII publishes them: every
// network (flux_domains.network, as UpdateFluxNetworks grouped them) with a
// domain judged flux, its domains, its agents' addresses (fluxAgentsSQL) and
// when they were first and last seen; by name.
func (db *DB) TAXIIFluxNetworks(ctx context.Context) ([]export.FluxNetwork, error) {
	rows, err := db.pool.Query(ctx, `
		WITH agents AS (`+fluxAgentsSQL+`),
		nets AS (
		    SELECT network FROM flux_domains WHERE network IS NOT NULL GROUP BY network
		    HAVING bool_or(verdict IN ('flux', 'double-flux')))
		SELECT d.network, array_agg(DISTINCT d.domain ORDER BY d.domain),
		       coalesce((SELECT array_agg(DISTINCT host(a.ip) ORDER BY host(a.ip)) FROM agents a JOIN flux_domains x USING (domain) WHERE x.network = d.network), '{}'),
		       (SELECT count(DISTINCT nullif(a.asn, 0)) FROM agents a JOIN flux_domains x USING (domain) WHERE x.network = d.network),
		       (SELECT min(i.first_seen) FROM agents a JOIN flux_domains x USING (domain) JOIN flux_ips i ON i.domain = a.domain AND i.ip = a.ip WHERE x.network = d.network),
		       (SELECT max(i.last_seen) FROM agents a JOIN flux_domains x USING (domain) JOIN flux_ips i ON i.domain = a.domain AND i.ip = a.ip WHERE x.network = d.network)
		  FROM flux_domains d JOIN nets USING (network)
		 GROUP BY d.network
		 ORDER BY d.network`)
	if err != nil {
		return nil, fmt.Errorf("taxii flux networks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (export.FluxNetwork, error) {
		var n export.FluxNetwork
		var asns int64
		var first, last *time.Time
		if err := r.Scan(&n.Name, &n.Domains, &n.Addrs, &asns, &first, &last); err != nil {
			return n, err
		}
		n.ASNs = int(asns)
		if first != nil && last != nil {
			n.FirstSeen, n.LastSeen = first.UTC(), last.UTC()
		}
		return n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("taxii flux networks: %w", err)
	}
	return out, nil
}

// syncTAXIIFlux publishes the flux networks: an infrastructure per network,
// consisting of its domains and agents' addresses (observables, and a
// relationship to each).
func (db *DB) syncTAXIIFlux(ctx context.Context, w *taxiiWriter) error {
	nets, err := db.TAXIIFluxNetworks(ctx)
	if err != nil {
		return err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+taxiiStateColumns+` FROM taxii_state st WHERE st.key LIKE 'flux-%'`)
	if err != nil {
		return err
	}
	prevs := map[string]taxiiPublished{}
	for rows.Next() {
		var st taxiiStateRow
		if err := rows.Scan(st.fields()...); err != nil {
			rows.Close()
			return err
		}
		p := st.published()
		prevs[p.key] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// A relationship's id follows its network's (a new one after a revocation),
	// decided first in the same flush or an earlier one.
	infraIDs := map[string]string{}
	for k, p := range prevs {
		if name, ok := strings.CutPrefix(k, "flux-network:"); ok && !p.revoked {
			infraIDs[name] = p.id
		}
	}
	w.onStep = func(prev taxiiPublished, next *taxiiPublished) {
		if next != nil {
			if name, ok := strings.CutPrefix(next.key, "flux-network:"); ok {
				infraIDs[name] = next.id
			}
		}
	}
	defer func() { w.onStep = nil }()
	wanted := map[string]bool{}
	flux := []string{TAXIIFluxNetworks}
	for _, n := range nets {
		key := "flux-network:" + n.Name
		wanted[key] = true
		if err := w.add(ctx, prevs[key], &taxiiWant{key: key, typ: "infrastructure", members: flux, digest: n.InfrastructureDigest(),
			id:     func(episode int) string { return export.STIXInfrastructureID(n.Name, episode) },
			render: n.Infrastructure}); err != nil {
			return err
		}
	}
	for _, n := range nets {
		for _, v := range append(slices.Clone(n.Domains), n.Addrs...) {
			target, sco, ok := export.STIXObservable(v)
			if !ok {
				continue
			}
			w.fixed(TAXIIFluxNetworks, typeOf(target), target, sco, time.Time{})
			key := "flux-rel:" + n.Name + "|" + target
			wanted[key] = true
			if err := w.add(ctx, prevs[key], &taxiiWant{key: key, typ: "relationship", members: flux, digest: target,
				id: func(int) string { return export.STIXRelationshipID("consists-of", infraIDs[n.Name], target) },
				render: func(v export.STIXVersion) []byte {
					return export.STIXConsistsOf(v, infraIDs[n.Name], target)
				}}); err != nil {
				return err
			}
		}
	}
	gone := slices.SortedFunc(func(yield func(taxiiPublished) bool) {
		for k, p := range prevs {
			if !wanted[k] && !p.revoked && !yield(p) {
				return
			}
		}
	}, func(a, b taxiiPublished) int { return cmp.Compare(a.key, b.key) })
	for _, p := range gone {
		if err := w.add(ctx, p, nil); err != nil {
			return err
		}
	}
	return w.flush(ctx)
}

// TAXIIPosition is a place in a collection's order: (date added, id, version).
type TAXIIPosition struct {
	DateAdded time.Time
	ID        string
	Version   time.Time
}

// TAXIIQuery selects versions of a collection's objects.
type TAXIIQuery struct {
	Collection string
	AddedAfter time.Time      // only versions added after it (zero: all)
	After      *TAXIIPosition // only versions after it in the order (the next page)
	IDs        []string       // only these objects (none: all)
	Types      []string       // only objects of these types (none: all)
	// Which versions of each object: the latest, the first, all, and those at
	// the times in At. None of them: the latest.
	Last, First, All bool
	At               []time.Time
	Objects          bool // read the objects, not only their versions
	Limit            int
}

// TAXIIEntry is one version of an object in a collection.
type TAXIIEntry struct {
	ID        string
	Type      string
	Version   time.Time
	DateAdded time.Time
	Revoked   bool
	Object    []byte // when asked
}

// TAXIIObjects reads versions of a collection's objects in the collection's
// order (date added, id, version), at most q.Limit.
func (db *DB) TAXIIObjects(ctx context.Context, q TAXIIQuery) ([]TAXIIEntry, error) {
	if !q.Last && !q.First && !q.All && len(q.At) == 0 {
		q.Last = true
	}
	var afterAdded, afterVersion, addedAfter *time.Time
	var afterID string
	if q.After != nil {
		afterAdded, afterID, afterVersion = &q.After.DateAdded, q.After.ID, &q.After.Version
	}
	if !q.AddedAfter.IsZero() {
		addedAfter = &q.AddedAfter
	}
	rows, err := db.pool.Query(ctx, `
		SELECT o.stix_id, o.type, o.version, o.date_added, o.revoked, CASE WHEN $12 THEN o.object END
		  FROM taxii_objects o
		 WHERE o.collection = $1
		   AND ($2::timestamptz IS NULL OR o.date_added > $2)
		   AND ($3::timestamptz IS NULL OR (o.date_added, o.stix_id, o.version) > ($3, $4::text, $5::timestamptz))
		   AND (coalesce(cardinality($6::text[]), 0) = 0 OR o.stix_id = ANY($6))
		   AND (coalesce(cardinality($7::text[]), 0) = 0 OR o.type = ANY($7))
		   AND ($8 OR $9 AND o.latest OR o.version = ANY(coalesce($11::timestamptz[], '{}'))
		        OR $10 AND NOT EXISTS (SELECT FROM taxii_objects p WHERE p.collection = o.collection AND p.stix_id = o.stix_id AND p.version < o.version))
		 ORDER BY o.date_added, o.stix_id, o.version
		 LIMIT $13`,
		q.Collection, addedAfter, afterAdded, afterID, afterVersion, q.IDs, q.Types, q.All, q.Last, q.First, q.At, q.Objects, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("taxii objects: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TAXIIEntry, error) {
		var e TAXIIEntry
		var obj *string
		err := r.Scan(&e.ID, &e.Type, &e.Version, &e.DateAdded, &e.Revoked, &obj)
		e.Version, e.DateAdded = e.Version.UTC(), e.DateAdded.UTC()
		if obj != nil {
			e.Object = []byte(*obj)
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("taxii objects: %w", err)
	}
	return out, nil
}
