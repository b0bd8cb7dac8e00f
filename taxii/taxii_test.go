package taxii

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/storage"
)

// fakeSource holds versions in memory and answers as storage.TAXIIObjects does.
type fakeSource struct{ entries []Entry }

func (f *fakeSource) Objects(_ context.Context, q Query) ([]Entry, error) {
	if !q.Last && !q.First && !q.All && len(q.At) == 0 {
		q.Last = true
	}
	es := slices.Clone(f.entries)
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(a.DateAdded.Compare(b.DateAdded), cmp.Compare(a.ID, b.ID), a.Version.Compare(b.Version))
	})
	first, last := map[string]time.Time{}, map[string]time.Time{}
	for _, e := range es {
		if f, ok := first[e.ID]; !ok || e.Version.Before(f) {
			first[e.ID] = e.Version
		}
		if l, ok := last[e.ID]; !ok || e.Version.After(l) {
			last[e.ID] = e.Version
		}
	}
	var out []Entry
	for _, e := range es {
		switch {
		case !q.AddedAfter.IsZero() && !e.DateAdded.After(q.AddedAfter):
		case q.After != nil && cmp.Or(e.DateAdded.Compare(q.After.DateAdded), cmp.Compare(e.ID, q.After.ID), e.Version.Compare(q.After.Version)) <= 0:
		case len(q.IDs) > 0 && !slices.Contains(q.IDs, e.ID):
		case len(q.Types) > 0 && !slices.Contains(q.Types, e.Type):
		case !(q.All || q.Last && e.Version.Equal(last[e.ID]) || q.First && e.Version.Equal(first[e.ID]) ||
			slices.ContainsFunc(q.At, e.Version.Equal)):
		default:
			if !q.Objects {
				e.Object = nil
			}
			out = append(out, e)
		}
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// fakeCollection is 21 versions of 15 objects, in the indicators collection,
// several added at one time (a sync's transaction), some in two versions.
func fakeCollection() *fakeSource {
	f := &fakeSource{}
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	add := func(id string, version, added time.Time) {
		typ, _, _ := strings.Cut(id, "--")
		obj := fmt.Sprintf(`{"type":%q,"spec_version":"2.1","id":%q,"modified":%q}`, typ, id, version.Format(time.RFC3339Nano))
		f.entries = append(f.entries, Entry{ID: id, Type: typ, Version: version, DateAdded: added, Object: []byte(obj)})
	}
	for i := range 15 {
		typ := "indicator"
		if i%5 == 4 {
			typ = "marking-definition"
		}
		id := fmt.Sprintf("%s--00000000-0000-4000-8000-%012d", typ, i)
		added := t0.Add(time.Duration(i/4) * time.Minute) // four at a time
		add(id, added, added)
		if i%2 == 0 && typ == "indicator" {
			later := t0.Add(time.Hour + time.Duration(i)*time.Second)
			add(id, later, later)
		}
	}
	return f
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func get(t *testing.T, h http.Handler, path string, accept ...string) response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://tip.example"+path, nil)
	if len(accept) > 0 {
		r.Header.Set("Accept", accept[0])
	} else {
		r.Header.Set("Accept", MediaTAXII)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := response{status: w.Code, header: w.Header()}
	b, _ := io.ReadAll(w.Body)
	if err := json.Unmarshal(b, &res.body); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %q", path, w.Code, b)
	}
	if ct := w.Header().Get("Content-Type"); ct != MediaTAXII {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return res
}

func indicatorsPath(rest string) string {
	return "/taxii2/tip/collections/" + CollectionID(storage.TAXIIIndicators) + "/" + rest
}

// The discovery, API root and collection resources hold what TAXII 2.1
// requires of them.
func TestDiscoveryAPIRootAndCollections(t *testing.T) {
	h := New(Config{MinScore: 0.5, Contact: "soc@example.org"}, fakeCollection())
	d := get(t, h, "/taxii2/")
	if d.status != 200 || d.body["title"] != "TIP" || d.body["default"] != "http://tip.example/taxii2/tip/" ||
		fmt.Sprint(d.body["api_roots"]) != "[http://tip.example/taxii2/tip/]" || d.body["contact"] != "soc@example.org" {
		t.Errorf("discovery: %d %v", d.status, d.body)
	}
	root := get(t, h, "/taxii2/tip/")
	if root.status != 200 || root.body["title"] == nil || fmt.Sprint(root.body["versions"]) != "["+MediaTAXII+"]" ||
		root.body["max_content_length"] != float64(1<<20) {
		t.Errorf("API root: %d %v", root.status, root.body)
	}
	cs := get(t, h, "/taxii2/tip/collections/")
	list, _ := cs.body["collections"].([]any)
	if cs.status != 200 || len(list) != 3 {
		t.Fatalf("collections: %d %v", cs.status, cs.body)
	}
	for _, c := range list {
		c := c.(map[string]any)
		if c["id"] == "" || c["title"] == "" || c["can_read"] != true || c["can_write"] != false || fmt.Sprint(c["media_types"]) != "["+MediaSTIX+"]" {
			t.Errorf("collection %v", c)
		}
		one := get(t, h, "/taxii2/tip/collections/"+c["id"].(string)+"/")
		if one.status != 200 || one.body["id"] != c["id"] {
			t.Errorf("the collection %s alone: %d %v", c["id"], one.status, one.body)
		}
	}
	if list[0].(map[string]any)["id"] != CollectionID(storage.TAXIIIndicators) || !strings.Contains(list[0].(map[string]any)["description"].(string), "0.50") {
		t.Errorf("the indicators collection: %v", list[0])
	}
	// Behind http.StripPrefix, and behind a TLS proxy.
	stripped := http.StripPrefix("/taxii2", New(Config{}, fakeCollection()))
	r := httptest.NewRequest(http.MethodGet, "http://tip.example/taxii2/", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	w := httptest.NewRecorder()
	stripped.ServeHTTP(w, r)
	if !strings.Contains(w.Body.String(), `"default":"https://tip.example/taxii2/tip/"`) {
		t.Errorf("behind StripPrefix and a TLS proxy: %s", w.Body)
	}
}

// A request that asks for another media type gets 406; one that asks for
// TAXII 2.1 (or anything) is answered.
func TestAcceptHeader(t *testing.T) {
	h := New(Config{}, fakeCollection())
	for _, c := range []struct {
		accept string
		want   int
	}{
		{"", 200}, {"*/*", 200}, {"application/*", 200}, {"application/taxii+json", 200},
		{"application/taxii+json;version=2.1", 200}, {"application/taxii+json; version=2.1", 200},
		{"application/json, */*;q=0.1", 200},
		{"application/json", 406}, {"application/taxii+json;version=2.0", 406}, {"text/html", 406},
		{"application/stix+json;version=2.1", 406}, {"application/taxii+json;q=0", 406},
	} {
		for _, path := range []string{"/taxii2/", indicatorsPath("objects/")} {
			res := get(t, h, path, c.accept)
			if res.status != c.want {
				t.Errorf("Accept %q, %s: %d, want %d", c.accept, path, res.status, c.want)
			}
			if c.want == 406 && (res.body["title"] == nil || res.body["http_status"] != "406") {
				t.Errorf("Accept %q: error %v", c.accept, res.body)
			}
		}
	}
}

// What does not exist is 404 with TAXII's error message; what the server does
// not do is 405; a bad filter is 400.
func TestErrors(t *testing.T) {
	h := New(Config{}, fakeCollection())
	for path, want := range map[string]int{
		"/taxii2/other/":                        404,
		"/taxii2/tip/nothing/":                  404,
		"/taxii2/tip/collections/nope/":         404,
		"/taxii2/tip/collections/nope/objects/": 404,
		indicatorsPath("objects/indicator--00000000-0000-4000-8000-999999999999/"):          404,
		indicatorsPath("objects/indicator--00000000-0000-4000-8000-999999999999/versions/"): 404,
		indicatorsPath("objects/x/y/z/"):                                                    404,
		"/taxii2/tip/status/1/":                                                             404,
		indicatorsPath("objects/?limit=0"):                                                  400,
		indicatorsPath("objects/?limit=x"):                                                  400,
		indicatorsPath("objects/?added_after=yesterday"):                                    400,
		indicatorsPath("objects/?next=bogus"):                                               400,
		indicatorsPath("objects/?match[version]=latest"):                                    400,
	} {
		res := get(t, h, path)
		if res.status != want || res.body["title"] == nil || res.body["http_status"] != fmt.Sprint(want) {
			t.Errorf("%s: %d %v, want %d with an error message", path, res.status, res.body, want)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "http://tip.example"+indicatorsPath("objects/"), strings.NewReader("{}"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" || w.Header().Get("Content-Type") != MediaTAXII {
		t.Errorf("POST: %d %v", w.Code, w.Header())
	}
}

// pageAll pages through a resource by next, holding every page to TAXII's
// paging rules, and returns the pages.
func pageAll(t *testing.T, h http.Handler, path string, limit int, field string) []response {
	t.Helper()
	var pages []response
	next := ""
	for {
		u := path + "?limit=" + fmt.Sprint(limit)
		if strings.Contains(path, "?") {
			u = path + "&limit=" + fmt.Sprint(limit)
		}
		if next != "" {
			u += "&next=" + url.QueryEscape(next)
		}
		res := get(t, h, u)
		if res.status != 200 {
			t.Fatalf("%s: %d %v", u, res.status, res.body)
		}
		items, _ := res.body[field].([]any)
		more, _ := res.body["more"].(bool)
		next, _ = res.body["next"].(string)
		if len(items) > limit {
			t.Errorf("%s: %d items, limit %d", u, len(items), limit)
		}
		if more != (next != "") {
			t.Errorf("%s: more %v with next %q", u, more, next)
		}
		if more && len(items) != limit {
			t.Errorf("%s: more after a short page of %d", u, len(items))
		}
		pages = append(pages, res)
		if !more {
			return pages
		}
	}
}

// Paging by next returns every version exactly once, in the order of date
// added, whatever the page size; the headers name each page's first and last
// date added; added_after leaves out what was added until then.
func TestPagingReturnsEveryObjectOnce(t *testing.T) {
	src := fakeCollection()
	h := New(Config{}, src)
	all, _ := src.Objects(context.Background(), Query{Collection: storage.TAXIIIndicators, All: true, Limit: 1000})
	for _, limit := range []int{1, 2, 4, 5, 7, 100} {
		var got []string
		for _, p := range pageAll(t, h, indicatorsPath("manifest/?match[version]=all"), limit, "objects") {
			items, _ := p.body["objects"].([]any)
			for i, it := range items {
				m := it.(map[string]any)
				if m["media_type"] != MediaSTIX || m["version"] == nil {
					t.Errorf("manifest record %v", m)
				}
				got = append(got, m["id"].(string)+"@"+m["version"].(string))
				added := m["date_added"].(string)
				if i == 0 && p.header.Get("X-TAXII-Date-Added-First") != added {
					t.Errorf("X-TAXII-Date-Added-First %q, first date added %q", p.header.Get("X-TAXII-Date-Added-First"), added)
				}
				if i == len(items)-1 && p.header.Get("X-TAXII-Date-Added-Last") != added {
					t.Errorf("X-TAXII-Date-Added-Last %q, last date added %q", p.header.Get("X-TAXII-Date-Added-Last"), added)
				}
			}
		}
		var want []string
		for _, e := range all {
			want = append(want, e.ID+"@"+e.Version.Format("2006-01-02T15:04:05.000Z"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %d versions %v, want the %d %v", limit, len(got), got, len(want), want)
		}
	}
	// Objects: the latest versions by default, each once.
	var ids []string
	for _, p := range pageAll(t, h, indicatorsPath("objects/"), 3, "objects") {
		items, _ := p.body["objects"].([]any)
		for _, it := range items {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
	}
	if len(ids) != 15 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 15 {
		t.Errorf("latest objects: %d, %v", len(ids), ids)
	}
	// added_after: strictly after.
	cut := all[5].DateAdded
	res := get(t, h, indicatorsPath("objects/?match[version]=all&added_after="+url.QueryEscape(cut.Format(time.RFC3339Nano))))
	items := res.body["objects"].([]any)
	var after int
	for _, e := range all {
		if e.DateAdded.After(cut) {
			after++
		}
	}
	if len(items) != after || res.header.Get("X-TAXII-Date-Added-First") <= dateAdded(cut) {
		t.Errorf("added_after %s: %d objects, want %d; first added %s", cut, len(items), after, res.header.Get("X-TAXII-Date-Added-First"))
	}
	// Nothing after the last: an empty envelope, no date headers.
	res = get(t, h, indicatorsPath("objects/?match[version]=all&added_after="+url.QueryEscape(all[len(all)-1].DateAdded.Format(time.RFC3339Nano))))
	if res.status != 200 || res.body["more"] != false || res.body["objects"] != nil || res.header.Get("X-TAXII-Date-Added-First") != "" {
		t.Errorf("past the end: %d %v %v", res.status, res.body, res.header)
	}
	// A limit above the largest page is the largest page.
	small := New(Config{MaxPageSize: 4}, src)
	if res := get(t, small, indicatorsPath("objects/?limit=100")); len(res.body["objects"].([]any)) != 4 || res.body["more"] != true {
		t.Errorf("limit over the largest page: %v", res.body)
	}
}

// match[type], match[id], match[version] and match[spec_version] filter.
func TestMatchFilters(t *testing.T) {
	h := New(Config{}, fakeCollection())
	count := func(query string) int {
		res := get(t, h, indicatorsPath("objects/?"+query))
		if res.status != 200 {
			t.Fatalf("%s: %d %v", query, res.status, res.body)
		}
		items, _ := res.body["objects"].([]any)
		return len(items)
	}
	id0, id1 := "indicator--00000000-0000-4000-8000-000000000000", "indicator--00000000-0000-4000-8000-000000000001"
	for q, want := range map[string]int{
		"":                               15,
		"match[type]=marking-definition": 3,
		"match[type]=indicator,marking-definition":                      15,
		"match[id]=" + id0:                                              1,
		"match[id]=" + id0 + "," + id1:                                  2,
		"match[id]=" + id0 + "&match[version]=all":                      2,
		"match[id]=" + id0 + "&match[version]=first":                    1,
		"match[id]=" + id0 + "&match[version]=first,last":               2,
		"match[id]=" + id0 + "&match[version]=2026-09-01T00:00:00.000Z": 1,
		"match[id]=" + id0 + "&match[version]=2026-09-02T00:00:00Z":     0,
		"match[version]=all":                                            21,
		"match[spec_version]=2.1":                                       15,
		"match[spec_version]=2.0":                                       0,
	} {
		if got := count(q); got != want {
			t.Errorf("%s: %d objects, want %d", q, got, want)
		}
	}
	// One object's resource, and its versions, oldest first.
	res := get(t, h, indicatorsPath("objects/"+id0+"/?match[version]=all"))
	if items := res.body["objects"].([]any); len(items) != 2 {
		t.Errorf("object %s: %v", id0, res.body)
	}
	vs := pageAll(t, h, indicatorsPath("objects/"+id0+"/versions/"), 1, "versions")
	if len(vs) != 2 || vs[0].body["versions"].([]any)[0] != "2026-09-01T00:00:00.000Z" || vs[1].body["versions"].([]any)[0] != "2026-09-01T01:00:00.000Z" {
		t.Errorf("versions: %v", vs)
	}
	if vs[0].header.Get("X-TAXII-Date-Added-First") != "2026-09-01T00:00:00.000000Z" {
		t.Errorf("versions' headers: %v", vs[0].header)
	}
}
