package mail

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzLimits are small so that the fuzzer reaches every bound.
var fuzzLimits = Limits{MaxSize: 1 << 20, MaxDepth: 4, MaxParts: 30, MaxDecoded: 2 << 20, MaxHeaders: 60,
	MaxHeaderLen: 4096, MaxURLs: 40, MaxArchiveEntries: 5}

func FuzzExtract(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, m := range labSample(f)[:40] {
		f.Add(m.Raw)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=a\n\n--a\n"))
	// Line ends as Python's email package reads them: bare CRs, and CRLF, CR
	// and LF mixed, with a CR before an empty line and one at the very end.
	f.Add([]byte("Received: from a (a [192.0.2.9])\r\tby mx1.trap-one.org; Tue, 1 Sep 2026 00:00:00 +0000\rSubject: cr\rContent-Type: multipart/mixed; boundary=b\r\r--b\rContent-Transfer-Encoding: quoted-printable\r\rhttp://x.example/=\ra\r--b--\r"))
	f.Add([]byte("Subject: mixed\r\nFrom: a@b.example\rContent-Type: multipart/alternative; boundary=b\n\r\n--b\r\r\n--b\n\r--b--\r"))
	// "B" encoded words in ISO-2022-JP with excess, missing and inner padding.
	f.Add([]byte("From: =?ISO-2022-JP?B?GyRCM1pFNyUrITwlSTN0PDAycTxSGyhC=?= <a@b.example>\nSubject: =?ISO-2022-JP?B?GyRCIVo9RU1XIVsbKEI==?=\n =?ISO-2022-JP?B?GyRCM1pFNyUrITwlSRsoQg?= =?iso-2022-jp?b?QQ==QUI=?= =?ISO-2022-JP?B?Q?=\n\n"))
	cfg := Config{TrapMX: []string{"mx1.trap-one.org"}, TrapMXAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
		TrustedRelays: []netip.Prefix{netip.MustParsePrefix("20.154.87.238/32")}, Limits: fuzzLimits}
	f.Fuzz(func(t *testing.T, raw []byte) {
		facts := Extract(raw, cfg)
		checkInvariants(t, facts, fuzzLimits)
		if facts.Size != int64(len(raw)) {
			t.Errorf("size %d of %d bytes", facts.Size, len(raw))
		}
		if again := Extract(raw, cfg); again.CampaignKey != facts.CampaignKey || len(again.URLs) != len(facts.URLs) {
			t.Error("two extractions differ")
		}
	})
}

func FuzzParseReceived(f *testing.F) {
	for _, v := range []string{
		"from a.example (a.example [192.0.2.1]) by mx.example with ESMTP id X; Tue, 1 Sep 2026 00:00:00 +0000",
		"from [192.0.2.1] (helo=[6.6.6.6] ident=x) by mx with esmtp (Exim 4.96) id 1-2-3 for a@b; Tue, 01 Sep 2026 02:26:10 +0200",
		"from unknown (HELO x) (192.0.2.1)\n  by mx with SMTP; 1 Sep 2026 10:00:00 -0000",
		"from h (IPv6:::ffff:192.0.2.1) by h2 (10.0.0.1) with Microsoft SMTP Server id 15.1.2507.39;\n Tue, 1 Sep 2026 02:26:15 +0200",
		"by 2002:a05::1 with SMTP id x;\n        Tue, 01 Sep 2026 03:00:00 -0700 (PDT)",
		"(qmail 1 invoked from network); 1 Sep 2026 10:00:00 -0000",
		"from ((((( [ ] ;;; by",
		"from a.example (a.example [192.0.2.1])\r\tby mx.example with ESMTP id X;\r\tTue, 1 Sep 2026 00:00:00 +0000",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h, _ := ParseReceived(v)
		for _, ip := range []string{h.FromIP, h.ByIP} {
			if ip == "" {
				continue
			}
			a, err := netip.ParseAddr(ip)
			if err != nil || a.Is4In6() {
				t.Errorf("address %q from %q", ip, v)
			}
		}
		// An address comes from a from-clause only, and is canonical.
		if h.FromIP != "" {
			a, _ := netip.ParseAddr(h.FromIP)
			if !strings.Contains(strings.ToLower(v), "from") || a.String() != h.FromIP {
				t.Errorf("address %q from %q", h.FromIP, v)
			}
		}
		if len(h.Raw) > len(v) {
			t.Errorf("raw %q longer than %q", h.Raw, v)
		}
	})
}

func FuzzExtractURLs(f *testing.F) {
	for _, s := range []string{
		"Visit http://example.com/a?b=1 now.",
		"hxxp://evil[.]example[.]com/login (see https://en.wikipedia.org/wiki/Spam_(food))",
		"www.example.org/deal 详情请访问：http://motek88.com/?u=bWFy",
		"h**p://x[dot]y/ hxxp[:]//z.example/ ftp://f.example/",
		"http://[2001:db8::1]:8080/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		urls := ExtractURLs(s)
		if len(urls) > maxTextURLs {
			t.Errorf("%d URLs", len(urls))
		}
		for _, u := range urls {
			scheme, rest, ok := strings.Cut(u, "://")
			if !ok || (scheme != "http" && scheme != "https" && scheme != "ftp") || rest == "" {
				t.Errorf("%q is not a URL", u)
			}
			if len(rest) > maxURLLen+len("[dot]")*maxURLLen {
				t.Errorf("%d bytes", len(u))
			}
			if utf8.ValidString(s) && !utf8.ValidString(u) {
				t.Errorf("%q from valid UTF-8 is not", u)
			}
			if strings.ContainsAny(rest, " \t\r\n<>\"") {
				t.Errorf("%q holds a delimiter", u)
			}
		}
	})
}
