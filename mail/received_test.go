package mail

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseReceived(t *testing.T) {
	for _, tc := range []struct {
		name, value                    string
		from, ip, helo, by, byIP, for_ string
		with, id                       string
		date                           string // RFC 3339, "" for none
	}{
		{name: "postfix",
			value: "from mail.example.com (mail.example.com [203.0.113.9])\n\tby mx1.trap-one.org (Postfix) with ESMTP id 4B1BB593061\n\tfor <info@trap-one.org>; Tue,  1 Sep 2026 00:21:16 +0000 (UTC)",
			from:  "mail.example.com", ip: "203.0.113.9", helo: "mail.example.com", by: "mx1.trap-one.org", for_: "info@trap-one.org",
			with: "ESMTP", id: "4B1BB593061", date: "2026-09-01T00:21:16Z"},
		{name: "postfix: forged HELO literal, no PTR",
			value: "from [6.6.6.6] (unknown [198.51.100.23]) by mx.example.org (Postfix) with SMTP id AB12; Mon, 31 Aug 2026 21:21:12 -0300",
			ip:    "198.51.100.23", helo: "[6.6.6.6]", by: "mx.example.org", with: "SMTP", id: "AB12", date: "2026-08-31T21:21:12-03:00"},
		{name: "postfix: IPv6 literal and TLS comment",
			value: "from WIN-3KD (dsl.example.net [IPv6:2001:db8:1::5])\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\n\t(No client certificate requested)\n\tby mx.example.org (Postfix) with ESMTPS id X1; Tue,  1 Sep 2026 10:00:00 +0200 (CEST)",
			from:  "dsl.example.net", ip: "2001:db8:1::5", helo: "WIN-3KD", by: "mx.example.org", with: "ESMTPS", id: "X1", date: "2026-09-01T08:00:00Z"},
		{name: "postfix: IPv4-mapped IPv6",
			value: "from host.example (host.example [IPv6:::ffff:192.0.2.77]) by mx.example.org (Postfix) with ESMTP id Q; Tue, 1 Sep 2026 10:00:00 +0000",
			from:  "host.example", ip: "192.0.2.77", helo: "host.example", by: "mx.example.org", with: "ESMTP", id: "Q", date: "2026-09-01T10:00:00Z"},
		{name: "postfix: no from-clause (local submission)",
			value: "by web2.zopin.de (Postfix, from userid 33)\n\tid 8FDD3C7B95; Mon, 31 Aug 2026 21:21:12 -0300 (BRT)",
			by:    "web2.zopin.de", id: "8FDD3C7B95", date: "2026-08-31T21:21:12-03:00"},
		{name: "exim: helo and ident in the comment",
			value: "from dyn-7.example.net ([198.51.100.7] helo=User ident=nobody)\n\tby mx.trap.net with esmtp (Exim 4.96)\n\t(envelope-from <x@y.z>)\n\tid 1qAbCd-000123-XY\n\tfor a@trap.net; Tue, 01 Sep 2026 02:26:10 +0200",
			from:  "dyn-7.example.net", ip: "198.51.100.7", helo: "User", by: "mx.trap.net", for_: "a@trap.net", with: "esmtp", id: "1qAbCd-000123-XY", date: "2026-09-01T00:26:10Z"},
		{name: "exim: no PTR, HELO literal of another address",
			value: "from [198.51.100.8] (helo=[6.6.6.6])\n\tby mx.trap.net with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\n\t(Exim 4.96)\n\tid BlNNu2-FCUbIm-q9; Tue, 01 Sep 2026 02:26:10 +0200",
			ip:    "198.51.100.8", helo: "[6.6.6.6]", by: "mx.trap.net", with: "esmtps", id: "BlNNu2-FCUbIm-q9", date: "2026-09-01T00:26:10Z"},
		{name: "exim: verified name equal to the HELO",
			value: "from mail.example.com ([203.0.113.10]) by mx.trap.net with esmtp (Exim 4.96) id 1q-2-3; Tue, 01 Sep 2026 02:26:10 +0200",
			from:  "mail.example.com", ip: "203.0.113.10", helo: "mail.example.com", by: "mx.trap.net", with: "esmtp", id: "1q-2-3", date: "2026-09-01T00:26:10Z"},
		{name: "exim: mapped address without IPv6: and a port",
			value: "from [::ffff:192.0.2.99]:51234 (port=51234 helo=x.example) by mx.trap.net with esmtp id 1; Tue, 01 Sep 2026 02:26:10 +0200",
			ip:    "192.0.2.99", helo: "x.example", by: "mx.trap.net", with: "esmtp", id: "1", date: "2026-09-01T00:26:10Z"},
		{name: "sendmail: ident and may be forged",
			value: "from helo.example (root@ptr.example [198.51.100.44] (may be forged))\n\tby mail.example.org (8.17.1/8.17.1) with ESMTP id 08V0Kf2k041689\n\tfor <a@example.org>; Tue, 1 Sep 2026 01:12:32 +0300",
			from:  "ptr.example", ip: "198.51.100.44", helo: "helo.example", by: "mail.example.org", for_: "a@example.org", with: "ESMTP", id: "08V0Kf2k041689", date: "2026-08-31T22:12:32Z"},
		{name: "sendmail: no PTR",
			value: "from [159.196.12.136] ([159.196.12.136]) by mail.example.org (8.17.1/8.17.1) with ESMTP id k811kU041689; Tue, 1 Sep 2026 01:12:32 +0300",
			ip:    "159.196.12.136", helo: "[159.196.12.136]", by: "mail.example.org", with: "ESMTP", id: "k811kU041689", date: "2026-08-31T22:12:32Z"},
		{name: "qmail: HELO and a bare address",
			value: "from unknown (HELO [6.6.6.6]) (198.51.100.60)\n  by mx.example.org with SMTP; 1 Sep 2026 10:00:00 -0000",
			ip:    "198.51.100.60", helo: "[6.6.6.6]", by: "mx.example.org", with: "SMTP", date: "2026-09-01T10:00:00Z"},
		{name: "qmail: identd user",
			value: "from unknown (HELO mail.example.com) (postmaster@198.51.100.61)\n  by mx.example.org with SMTP; 1 Sep 2026 10:00:00 -0000",
			ip:    "198.51.100.61", helo: "mail.example.com", by: "mx.example.org", with: "SMTP", date: "2026-09-01T10:00:00Z"},
		{name: "qmail: invoked from network",
			value: "(qmail 12345 invoked from network); 1 Sep 2026 10:00:00 -0000",
			date:  "2026-09-01T10:00:00Z"},
		{name: "microsoft: address in parentheses, build number in id",
			value: "from EXCH02.corp.local (10.1.2.6) by EXCH01.corp.local\n (10.1.2.5) with Microsoft SMTP Server (version=TLS1_2,\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.1.2507.39 via Frontend Transport;\n Tue, 1 Sep 2026 02:26:15 +0200",
			ip:    "10.1.2.6", helo: "EXCH02.corp.local", by: "EXCH01.corp.local", byIP: "10.1.2.5", with: "Microsoft SMTP Server", id: "15.1.2507.39", date: "2026-09-01T00:26:15Z"},
		{name: "microsoft: mapi with a zoned link-local address",
			value: "from EXCH03.corp.local ([fe80::1:2%12]) by EXCH03.corp.local ([fe80::1:2%12]) with mapi id 15.01.2507.039;\n Tue, 1 Sep 2026 02:26:15 +0200",
			ip:    "fe80::1:2%12", helo: "EXCH03.corp.local", by: "EXCH03.corp.local", byIP: "fe80::1:2%12", with: "mapi", id: "15.01.2507.039", date: "2026-09-01T00:26:15Z"},
		{name: "gmail: no from-clause, IPv6-looking by, dotted id",
			value: "by 2002:a05:6402:1a4d:b0:5c2:1234:abcd with SMTP id ab12csp123456abc;\n        Tue, 01 Sep 2026 03:00:00 -0700 (PDT)",
			by:    "2002:a05:6402:1a4d:b0:5c2:1234:abcd", byIP: "2002:a05:6402:1a4d:b0:5c2:1234:abcd", with: "SMTP", id: "ab12csp123456abc", date: "2026-09-01T10:00:00Z"},
		{name: "gmail: name with a trailing dot",
			value: "from mail-wr1-f41.google.com (mail-wr1-f41.google.com. [209.85.221.41])\n        by mx.google.com with SMTPS id a12si1234567abc.12.2026.09.01.10.00.00\n        for <x@y.z>\n        (Google Transport Security);\n        Tue, 01 Sep 2026 03:00:00 -0700 (PDT)",
			from:  "mail-wr1-f41.google.com", ip: "209.85.221.41", helo: "mail-wr1-f41.google.com", by: "mx.google.com", for_: "x@y.z", with: "SMTPS", id: "a12si1234567abc.12.2026.09.01.10.00.00", date: "2026-09-01T10:00:00Z"},
		{name: "amavis: the receiving address in the by-clause",
			value: "from mx1.trap-one.org ([127.0.0.1])\n\tby localhost (mx1.trap-one.org [127.0.0.1]) (amavisd-new, port 10024)\n\twith ESMTP id eifV1vc3MPAB for <a@trap-one.org>;\n\tTue, 01 Sep 2026 00:21:28 +0000",
			ip:    "127.0.0.1", helo: "mx1.trap-one.org", by: "localhost", byIP: "127.0.0.1", for_: "a@trap-one.org", with: "ESMTP", id: "eifV1vc3MPAB", date: "2026-09-01T00:21:28Z"},
		{name: "an address only in id and with",
			value: "from helo.example by mx.example.org with 1.2.3.4 id 5.6.7.8; Tue, 1 Sep 2026 10:00:00 +0000",
			helo:  "helo.example", by: "mx.example.org", with: "1.2.3.4", id: "5.6.7.8", date: "2026-09-01T10:00:00Z"},
		{name: "old style: bracket after the comment",
			value: "from relay.example (helo) [198.51.100.70] by mx.example.org; Tue, 1 Sep 2026 10:00:00 +0000",
			ip:    "198.51.100.70", helo: "relay.example", by: "mx.example.org", date: "2026-09-01T10:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := ParseReceived(tc.value)
			got := [...]string{h.From, h.FromIP, h.HELO, h.By, h.ByIP, h.For, h.With, h.ID}
			want := [...]string{tc.from, tc.ip, tc.helo, tc.by, tc.byIP, tc.for_, tc.with, tc.id}
			names := [...]string{"from", "from_ip", "helo", "by", "by_ip", "for", "with", "id"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %q, want %q", names[i], got[i], want[i])
				}
			}
			var date string
			if h.Date != nil {
				date = h.Date.UTC().Format(time.RFC3339)
			}
			if want := tc.date; want != "" {
				if w, _ := time.Parse(time.RFC3339, want); date != w.UTC().Format(time.RFC3339) {
					t.Errorf("date = %q, want %q", date, want)
				}
			} else if date != "" {
				t.Errorf("date = %q, want none", date)
			}
			if h.Raw == "" || h.Raw != unfold(tc.value) {
				t.Errorf("raw = %q", h.Raw)
			}
		})
	}
	if _, err := ParseReceived("(qmail 1 invoked by uid 0); 1 Sep 2026 10:00:00 -0000"); err == nil {
		t.Error("a header without from or by clause gives no error")
	}
	if _, err := ParseReceived("  "); err == nil {
		t.Error("an empty header gives no error")
	}
}

// The trust walk: from the trap MX's header, over trusted and private hops, to
// the first other address; never below it, never from a forged header.
func TestSender(t *testing.T) {
	cfg := Config{
		TrapMX:        []string{"mx1.trap.org"},
		TrapMXAddrs:   []netip.Prefix{netip.MustParsePrefix("192.0.2.25/32")},
		TrustedRelays: []netip.Prefix{netip.MustParsePrefix("81.2.69.0/28")},
	}
	head := "From: a@b.c\nDate: Tue, 1 Sep 2026 10:00:00 +0000\nSubject: x\n"
	for _, tc := range []struct {
		name, received string // Received headers, newest first
		ip, helo       string
		hop            int
		defect         string
	}{
		{name: "straight from a bot",
			received: "Received: from mx1.trap.org (mx1.trap.org [10.0.0.5]) by imap.trap.org (Postfix) with LMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n" +
				"Received: from bot (dsl.isp.example [45.77.10.50]) by mx1.trap.org (Postfix) with ESMTP id 2; Tue, 1 Sep 2026 10:00:04 +0000\n" +
				"Received: from forged (forged [6.6.6.6]) by mx1.trap.org (Postfix) with ESMTP id 3; Tue, 1 Sep 2026 09:00:00 +0000\n",
			ip: "45.77.10.50", helo: "bot", hop: 1},
		{name: "through a trusted relay and a content filter",
			received: "Received: from localhost (localhost [127.0.0.1]) by mx1.trap.org (Postfix) with ESMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n" +
				"Received: from relay.trap.org (relay.trap.org [81.2.69.3]) by mx1.trap.org (Postfix) with ESMTP id 2; Tue, 1 Sep 2026 10:00:04 +0000\n" +
				"Received: from x.example ([::ffff:45.77.10.51] helo=x.example) by relay.trap.org with esmtp (Exim 4.96) id 3; Tue, 1 Sep 2026 10:00:03 +0000\n",
			ip: "45.77.10.51", helo: "x.example", hop: 2},
		{name: "the MX known by its address",
			received: "Received: from a.example (a.example [45.77.10.52]) by [192.0.2.25] with ESMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n",
			ip:       "45.77.10.52", helo: "a.example", hop: 0},
		{name: "a forged header below claims the MX",
			received: "Received: from b.example (b.example [45.77.10.53]) by mx1.trap.org (Postfix) with ESMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n" +
				"Received: from c (c [45.77.10.54]) by mx1.trap.org (Postfix) with ESMTP id 2; Tue, 1 Sep 2026 10:00:00 +0000\n",
			ip: "45.77.10.53", helo: "b.example", hop: 0},
		{name: "the MX's header has no from-clause",
			received: "Received: by mx1.trap.org (Postfix, from userid 0) id 1; Tue, 1 Sep 2026 10:00:05 +0000\n" +
				"Received: from d (d [45.77.10.55]) by other.example with ESMTP id 2; Tue, 1 Sep 2026 10:00:00 +0000\n",
			hop: -1, defect: "Received header 0 (by mx1.trap.org) names no connecting address: no sender"},
		{name: "everything internal",
			received: "Received: from e (e [10.1.1.1]) by mx1.trap.org with ESMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n",
			hop:      -1, defect: "every hop from the trap's MX down is trusted or private: no sender"},
		{name: "no header by the MX: the newest is trusted, and that is said",
			received: "Received: from f (f [45.77.10.56]) by elsewhere.example with ESMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n",
			ip:       "45.77.10.56", helo: "f", hop: 0, defect: "no Received header written by the trap's MX: the sender is taken from the newest header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Extract([]byte(tc.received+head+"\nbody\n"), cfg)
			if f.SenderIP != tc.ip || f.HELO != tc.helo || f.SenderHop != tc.hop {
				t.Errorf("sender %q helo %q hop %d, want %q %q %d", f.SenderIP, f.HELO, f.SenderHop, tc.ip, tc.helo, tc.hop)
			}
			if tc.defect != "" && (len(f.Defects) != 1 || f.Defects[0] != tc.defect) {
				t.Errorf("defects %q, want %q", f.Defects, tc.defect)
			}
			if tc.defect == "" && len(f.Defects) > 0 {
				t.Errorf("defects %q", f.Defects)
			}
		})
	}
}

// A leading dot names every MX host under a domain (untroubled.org's qmail hosts).
func TestSenderWithAnMXDomain(t *testing.T) {
	cfg := Config{TrapMX: []string{".trap.org"}}
	raw := "Received: from g (g.example [45.77.10.57]) by mx7.trap.org with ESMTP id 1; Tue, 1 Sep 2026 10:00:05 +0000\n" +
		"From: a@b.c\nDate: Tue, 1 Sep 2026 10:00:00 +0000\nSubject: x\n\nbody\n"
	if f := Extract([]byte(raw), cfg); f.SenderIP != "45.77.10.57" || len(f.Defects) > 0 {
		t.Errorf("sender %q, defects %q", f.SenderIP, f.Defects)
	}
	// "nottrap.org" is not under ".trap.org"
	raw = strings.Replace(raw, "mx7.trap.org", "mx.nottrap.org", 1)
	if f := Extract([]byte(raw), cfg); len(f.Defects) == 0 {
		t.Errorf("mx.nottrap.org was taken for the trap's MX: %+v", f)
	}
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Tue,  1 Sep 2026 00:21:32 +0000 (UTC)", "2026-09-01T00:21:32Z"},
		{"31 Aug 2026 21:20:25 -0300", "2026-08-31T21:20:25-03:00"},
		{"Mon, 2 Jan 2006 15:04:05 GMT", "2006-01-02T15:04:05Z"},
		{"Mon, 2 Jan 06 15:04:05 EST", "2006-01-02T15:04:05-05:00"},
		{"Tuesday, 01 September 2026 10:00 +0200", "2026-09-01T10:00:00+02:00"},
		{"Tue, 1 Sep 2026 10:00:00", "2026-09-01T10:00:00Z"},
		{"Tue, 35 Sep 2026 26:64:23 +8328", ""},
		{"Tue, 31 Sep 2026 10:00:00 +0000", ""},
		{"Tue, 1 Sep 2026 10:00:00 +2500", ""},
		{"yesterday", ""},
		{"", ""},
	} {
		got := ""
		if d, ok := parseDate(tc.in); ok {
			got = d.Format(time.RFC3339)
		}
		if got != tc.want {
			t.Errorf("parseDate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
