package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxRawMail is the largest raw mail a Client accepts from an agent.
const MaxRawMail = 256 << 20

// ErrChecksum is the error of bytes that do not match the SHA-256 they were
// announced with: a batch whose bytes differ from the agent's manifest, a raw
// mail whose bytes are not its name.
var ErrChecksum = errors.New("SHA-256 mismatch")

// ErrPin is the error of an agent whose certificate is not the pinned one.
var ErrPin = errors.New("certificate does not match the pinned fingerprint")

// StatusError is an agent's refusal: the HTTP status and its {"error"} message.
// RetryAfter is set with 429 (the token's rate limit).
type StatusError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("agent answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Client pulls from one agent over HTTPS; it is what a collector uses. Set its
// fields before the first call and do not change them after; a Client is safe
// for concurrent use.
//
// The agent is authenticated by its certificate's fingerprint rather than by a
// CA, since agents usually serve a self-signed certificate (`tip agent init`).
// Every byte received is checked: JSON answers against the protocol, each
// streamed batch against its SHA-256, each raw mail against its name.
type Client struct {
	URL         string // https://host:port of the agent
	Token       string // tipa_…, sent as a bearer token
	Fingerprint string // SHA-256 of the agent's DER certificate, 64 lower-case hex digits; "" trusts the system's CAs instead

	once sync.Once
	base *url.URL
	hc   *http.Client
	err  error
}

// TLSConfig is the client's TLS configuration: TLS 1.2 at least and, with a
// Fingerprint, the agent's certificate pinned (checked on every connection,
// resumed ones included) in place of the usual CA verification.
func (c *Client) TLSConfig() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.Fingerprint == "" {
		return conf, nil
	}
	pin := c.Fingerprint
	if !ValidSHA256(pin) {
		return nil, fmt.Errorf("agent client: fingerprint %q: want 64 lower-case hex digits", pin)
	}
	// The pin replaces the CA and name checks: a self-signed certificate has no
	// CA, and the pin names exactly one certificate, whatever host serves it.
	conf.InsecureSkipVerify = true
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("agent %s: no certificate: %w", cs.ServerName, ErrPin)
		}
		if got := Fingerprint(cs.PeerCertificates[0].Raw); got != pin {
			return fmt.Errorf("agent %s: certificate %s, pinned %s: %w", cs.ServerName, got, pin, ErrPin)
		}
		return nil
	}
	return conf, nil
}

func (c *Client) init() error {
	c.once.Do(func() {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			c.err = fmt.Errorf("agent client: url: %w", err)
			return
		case u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			c.err = fmt.Errorf("agent client: url %q: want https://host:port", c.URL)
			return
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		conf, err := c.TLSConfig()
		if err != nil {
			c.err = err
			return
		}
		c.base = u
		c.hc = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				TLSClientConfig:       conf,
				TLSHandshakeTimeout:   15 * time.Second,
				ResponseHeaderTimeout: time.Minute,
				IdleConnTimeout:       90 * time.Second,
				MaxIdleConnsPerHost:   4,
				// Batches are gzip files already; no Accept-Encoding keeps requests small.
				DisableCompression: true,
			},
			// The token goes to the agent it was made for and nowhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return c.err
}

// rateLimitRetries bounds how many times in a row a request the agent's rate
// limit refused is sent again.
const rateLimitRetries = 20

// get sends GET path?query and returns the answer when it is 200 with the
// media type want; anything else is an error (a *StatusError for the agent's
// refusals). A request the agent's rate limit refused (429) is sent again after
// the Retry-After it gave, so a collector pulling many raw mails keeps to the
// agent's pace rather than failing.
func (c *Client) get(ctx context.Context, path string, query url.Values, want string) (*http.Response, error) {
	for try := 0; ; try++ {
		resp, err := c.getOnce(ctx, path, query, want)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || try == rateLimitRetries {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(max(se.RetryAfter, 50*time.Millisecond)):
		}
	}
}

func (c *Client) getOnce(ctx context.Context, path string, query url.Values, want string) (*http.Response, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", c.base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		se := &StatusError{Status: resp.StatusCode}
		var body struct {
			Error string `json:"error"`
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if json.Unmarshal(data, &body) == nil && body.Error != "" {
			se.Message = body.Error
		} else {
			se.Message = strings.ToValidUTF8(string(bytes.TrimSpace(data[:min(len(data), 200)])), "?")
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			se.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, fmt.Errorf("agent %s: GET %s: %w", c.base.Host, path, se)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != want {
		resp.Body.Close()
		return nil, fmt.Errorf("agent %s: GET %s: content type %q, want %q", c.base.Host, path, mt, want)
	}
	return resp, nil
}

// getJSON decodes a JSON answer of at most limit bytes into v.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, limit int64, v any) error {
	resp, err := c.get(ctx, path, query, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("agent %s: GET %s: %w", c.base.Host, path, err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("agent %s: GET %s: answer larger than %d bytes", c.base.Host, path, limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("agent %s: GET %s: %w", c.base.Host, path, err)
	}
	return nil
}

// Latest asks the agent for its latest version: one small request, all an
// up-to-date collector needs.
func (c *Client) Latest(ctx context.Context) (Head, error) {
	var h Head
	if err := c.getJSON(ctx, "/v1/latest", nil, 4<<10, &h); err != nil {
		return Head{}, err
	}
	if h.Schema != Schema || !idRE.MatchString(h.Agent) {
		return Head{}, fmt.Errorf("agent %s: latest: schema %d agent %q, want schema %d and an agent name", c.base.Host, h.Schema, h.Agent, Schema)
	}
	return h, nil
}

// Manifest lists the versions after after, ascending, at most limit of them (0:
// the agent's page, 1000); ask again after the last one for more. The entries
// are checked: they follow after without gaps and none is past Latest.
func (c *Client) Manifest(ctx context.Context, after uint64, limit int) (ManifestPage, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p ManifestPage
	if err := c.getJSON(ctx, "/v1/manifest", q, 4<<20, &p); err != nil {
		return ManifestPage{}, err
	}
	err := CheckEntries(p.Versions, after)
	switch {
	case err != nil:
	case p.Schema != Schema || !idRE.MatchString(p.Agent):
		err = fmt.Errorf("schema %d agent %q, want schema %d and an agent name", p.Schema, p.Agent, Schema)
	case len(p.Versions) > MaxManifestPage || (limit > 0 && len(p.Versions) > limit):
		err = fmt.Errorf("%d versions, asked for at most %d", len(p.Versions), min(limit, MaxManifestPage))
	case len(p.Versions) > 0 && p.Versions[len(p.Versions)-1].Version > p.Latest:
		err = fmt.Errorf("version %d past latest %d", p.Versions[len(p.Versions)-1].Version, p.Latest)
	}
	if err != nil {
		return ManifestPage{}, fmt.Errorf("agent %s: manifest: %w", c.base.Host, err)
	}
	return p, nil
}

// Stream fetches the batches after after, in order, in one request of at most
// maxBytes (0: the agent's default, 64 MiB; at least one batch comes whatever
// its size), and calls fn for each with its stream item and a reader of exactly
// its bytes. It returns the last version for which fn returned nil and whose
// bytes matched their SHA-256; a collector continues from there.
//
// The reader hashes what it reads and, at the end, returns an error wrapping
// ErrChecksum instead of io.EOF when the bytes differ from the SHA-256 the
// agent's manifest gave: fn must read it to io.EOF before it keeps anything of
// the batch (DecodeBatch does). Stream reads what fn left and checks it too; a
// mismatch, a cut stream or an error of fn ends the stream there, so neither the
// bad batch nor any after it is accepted.
func (c *Client) Stream(ctx context.Context, after uint64, maxBytes int64, fn func(StreamItem, io.Reader) error) (uint64, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if maxBytes > 0 {
		q.Set("max_bytes", strconv.FormatInt(maxBytes, 10))
	} else {
		maxBytes = DefaultStreamMaxBytes
	}
	resp, err := c.get(ctx, "/v1/batches", q, streamContentType)
	if err != nil {
		return after, err
	}
	defer resp.Body.Close()
	last, err := ReadStream(resp.Body, after, maxBytes, fn)
	if err != nil {
		return last, fmt.Errorf("agent %s: stream after %d: %w", c.base.Host, after, err)
	}
	return last, nil
}

// ReadStream reads a batch stream (docs/agent-protocol.md) that answered
// "after after, at most maxBytes" and calls fn for each batch as Stream
// describes. It refuses an item that is malformed, out of order, or (after the
// first) takes the stream over maxBytes.
func ReadStream(r io.Reader, after uint64, maxBytes int64, fn func(StreamItem, io.Reader) error) (uint64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	last := after
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			return last, nil
		}
		if err != nil || len(line) > maxItemLine {
			if err == nil || errors.Is(err, bufio.ErrBufferFull) {
				return last, fmt.Errorf("after batch %d: an item line longer than %d bytes", last, maxItemLine)
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return last, fmt.Errorf("after batch %d: item line: %w", last, err)
		}
		var it StreamItem
		if err := strictJSON(line, &it); err != nil {
			return last, fmt.Errorf("after batch %d: item line: %w", last, err)
		}
		total += int64(len(line)) + it.Size
		switch {
		case it.Version == 0 || it.Version != last+1:
			return last, fmt.Errorf("item version %d, want %d", it.Version, last+1)
		case !ValidSHA256(it.SHA256):
			return last, fmt.Errorf("batch %d: sha256 %q is not 64 lower-case hex digits", it.Version, it.SHA256)
		case it.Size <= 0 || it.Size > MaxBatchBytes:
			return last, fmt.Errorf("batch %d: size %d out of range", it.Version, it.Size)
		case last > after && total > maxBytes:
			return last, fmt.Errorf("batch %d: the stream passes its %d bytes", it.Version, maxBytes)
		}
		vr := newVerifier(io.LimitReader(br, it.Size), it.Size, it.SHA256, fmt.Sprintf("batch %d", it.Version))
		if err := fn(it, vr); err != nil {
			return last, fmt.Errorf("batch %d: %w", it.Version, err)
		}
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return last, err
		}
		last = it.Version
	}
}

// Raw fetches the raw mail sha of batch version (needs a token of scope raw).
// The reader returns an error wrapping ErrChecksum instead of io.EOF when the
// bytes are not that mail; read it to io.EOF before keeping anything, and close it.
func (c *Client) Raw(ctx context.Context, version uint64, sha string) (io.ReadCloser, error) {
	if !ValidSHA256(sha) {
		return nil, fmt.Errorf("raw mail %q: not 64 lower-case hex digits", sha)
	}
	resp, err := c.get(ctx, fmt.Sprintf("/v1/batches/%d/raw/%s", version, sha), nil, "message/rfc822")
	if err != nil {
		return nil, err
	}
	if resp.ContentLength < 0 || resp.ContentLength > MaxRawMail {
		resp.Body.Close()
		return nil, fmt.Errorf("agent %s: raw mail %s: length %d, want 0 to %d", c.base.Host, sha, resp.ContentLength, MaxRawMail)
	}
	v := newVerifier(io.LimitReader(resp.Body, resp.ContentLength), resp.ContentLength, sha, "raw mail "+sha)
	return struct {
		io.Reader
		io.Closer
	}{v, resp.Body}, nil
}

// RawMails fetches the raw pack of batch b (needs a token of scope raw) and
// calls fn, in batch order, for each of b's mails kept raw (m points into
// b.Mails) with a reader of its raw bytes. The reader returns an error wrapping ErrChecksum instead of io.EOF
// when the bytes are not that mail, so fn must read it to io.EOF before keeping
// anything. One request carries the whole batch's raw mails.
func (c *Client) RawMails(ctx context.Context, b Batch, fn func(m *Mail, raw io.Reader) error) error {
	if !slices.ContainsFunc(b.Mails, func(m Mail) bool { return m.Raw }) {
		return nil
	}
	v := b.Header.Version
	resp, err := c.get(ctx, fmt.Sprintf("/v1/batches/%d/raw", v), nil, "application/octet-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength < 0 {
		return fmt.Errorf("agent %s: raw pack %d: no length", c.base.Host, v)
	}
	if err := ReadPack(io.LimitReader(resp.Body, resp.ContentLength), b, fn); err != nil {
		return fmt.Errorf("agent %s: %w", c.base.Host, err)
	}
	return nil
}

// ReadPack reads the raw pack of batch b front to back and calls fn for each of
// b's mails kept raw, as Client.RawMails describes. A pack that ends before a
// mail does is an error wrapping io.ErrUnexpectedEOF.
func ReadPack(pack io.Reader, b Batch, fn func(m *Mail, raw io.Reader) error) error {
	br := bufio.NewReaderSize(pack, 256<<10)
	var pos int64
	for i := range b.Mails {
		m := &b.Mails[i]
		if !m.Raw {
			continue
		}
		what := fmt.Sprintf("raw mail %s of batch %d", m.Facts.SHA256, b.Header.Version)
		if m.RawOffset < pos { // DecodeBatch refuses such a batch; a Batch built otherwise may not
			return fmt.Errorf("%s: offset %d is behind the pack's position %d", what, m.RawOffset, pos)
		}
		if n, err := br.Discard(int(min(m.RawOffset-pos, math.MaxInt))); int64(n) != m.RawOffset-pos {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%s: the pack ends at %d: %w", what, pos+int64(n), err)
		}
		pos = m.RawOffset
		vr := newVerifier(io.LimitReader(br, m.Facts.Size), m.Facts.Size, m.Facts.SHA256, what)
		if err := fn(m, vr); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return err
		}
		pos += m.Facts.Size
	}
	return nil
}

// verifier reads exactly size bytes and, at their end, returns io.EOF only if
// their SHA-256 is want.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	size int64
	n    int64
	want string
	what string
	err  error
}

func newVerifier(r io.Reader, size int64, want, what string) *verifier {
	return &verifier{r: r, h: sha256.New(), size: size, want: want, what: what}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if v.n < v.size {
			err = fmt.Errorf("%s: %d of %d bytes: %w", v.what, v.n, v.size, io.ErrUnexpectedEOF)
		} else if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			err = fmt.Errorf("%s: the bytes received hash to %s, the agent announced %s: %w", v.what, got, v.want, ErrChecksum)
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}
