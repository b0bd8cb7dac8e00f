package mail

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixtureConfig is the configuration of the traps the fixtures were sent to.
var fixtureConfig = Config{
	TrapMX:        []string{"mx1.trap-one.org", "mx.spamtrap-two.net"},
	TrustedRelays: []netip.Prefix{netip.MustParsePrefix("20.154.87.238/32")},
}

func readFixture(t *testing.T, name string) Facts {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Extract(raw, fixtureConfig)
}

func urlsOf(f Facts) []string {
	var out []string
	for _, u := range f.URLs {
		out = append(out, u.Source+" "+u.URL)
	}
	return out
}

// The fixtures carry the quirks of real spam; each test says what must come out.
func TestFixtures(t *testing.T) {
	for _, tc := range []struct {
		file                    string
		subject, fromName, from string
		replyTo, to, messageID  string
		sender, helo, envelope  string
		xMailer                 string
		urls                    []string // source and URL, in order found
		attachments             []string // name, type, size and digest
		defects                 []string
		skew                    int64
	}{
		{file: "folded-2047.eml",
			// Encoded-words in ISO-8859-1 (Q), Windows-1251 and GB2312 (B)
			// over folded lines; a KOI8-R display name; a folded Date and
			// Message-ID; a quoted-printable Latin-1 body with soft breaks.
			subject: "Grüße und Rabatt: Скидка 50%特价", fromName: "Ольга Петрова", from: "olga@mailer.example.biz",
			replyTo: "wang@reply.example.cn", to: "anna.smith@trap-one.org", messageID: "20260831235900.4711@mailer.example.biz",
			sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example", envelope: "bounce-77@mailer.example.biz",
			xMailer: "Почтовик 2.0", skew: -1350,
			urls: []string{"text https://angebot.example.de/aktion?id=4711&ref=mail",
				"text http://lang.example.com/ein/sehr/langer/pfad/der/umgebrochen/wird/weil/er/so/lang/ist/index.html?x=1"}},
		{file: "html-only.eml",
			// A base64 Windows-1251 HTML body: a meta refresh, a background, an
			// entity-encoded scheme, a protocol-relative link, an href split over
			// lines, defanged and bare-www text, a form, a pixel, a cid: and a
			// mailto: (not URLs), a link in hidden text.
			subject: "Акция", fromName: "Реклама", from: "promo@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "html-only@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls: []string{"html http://refresh.example.net/r", "html https://bg.example.org/b.png",
				"html https://entity.example.com/login?a=1&b=2", "html http://protocol-relative.example.com/p",
				"html https://split.example.com/x", "html http://defanged.example.ru/path", "html http://www.bare.example.info/deal",
				"html https://form.example.net/post", "html https://pixel.example.com/px.gif", "html https://hidden.example.org/h"}},
		{file: "broken-boundary.eml",
			subject: "Broken boundary", fromName: "Shop", from: "shop@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "broken@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls:    []string{"text http://text.example.com/buy", "html http://html.example.com/buy"},
			defects: []string{`broken MIME boundary: Content-Type declares "----=_Part_1_2.3X" but the parts use "----=_Part_1_2.3Y"`}},
		{file: "missing-boundary.eml",
			subject: "Missing boundary", fromName: "Shop", from: "shop@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "missing@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls:    []string{"text http://missing.example.com/a"},
			defects: []string{`multipart/mixed without a boundary parameter: the parts use "XYZ"`}},
		{file: "truncated.eml",
			subject: "Invoice 4711", fromName: "Billing", from: "billing@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "truncated@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls:        []string{"attachment https://pdf.example.com/doc/1/view.php"},
			attachments: []string{"Invoice_4711.pdf application/pdf 733 0f6a238b91c5ccd363138312d34b86ca0f60512fcfa237348e397b26aa4f51ee"},
			defects: []string{`missing closing MIME boundary "b1_0123456789abcdef"`,
				`base64 in attachment "Invoice_4711.pdf" ends inside a group: cut short`, "message ends inside a line: truncated"}},
		{file: "nested-rfc822.eml",
			// The attached message's links count as an attachment's; its own
			// headers are not the mail's.
			subject: "Fwd: look at this", fromName: "Forwarder", from: "fwd@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "nested@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls:        []string{"attachment https://inner.example.com/x", "attachment https://inner-html.example.com/y"},
			attachments: []string{"original.eml message/rfc822 397 98561a2316832e53c003b3dcbee4c378f0f719a16046cb36c71f0b0b5ced1fbe"}},
		{file: "zip-attachment.eml",
			// An RFC 2231 file name; the script and the text in the zip are read,
			// the executable is not.
			subject: "Invoice", fromName: "Accounts", from: "accounts@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "zip@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls: []string{"attachment https://dropper.example.com/payload.exe", "attachment http://pay.example.com/now"},
			attachments: []string{"Invoice_4711.zip application/x-zip-compressed 760 88db7e84e13481a99fdb41e3c1bfccad162e39605b431c8b93d5f5a79ef9691c " +
				"[Invoice_4711.js readme.txt tool.exe]"}},
		{file: "raw-8bit.eml",
			// A raw KOI8-R Subject is read in the body's charset; a raw Latin-1
			// name is not, since KOI8-R would make "JЭrgen" of it.
			subject: "Выгодное предложение", fromName: "Jürgen Müller", from: "jm@mailer.example.biz", to: "anna.smith@trap-one.org",
			messageID: "raw8@mailer.example.biz", sender: "81.2.69.142", helo: "dsl-81-2-69-142.pool.isp.example",
			envelope: "bounce-77@mailer.example.biz", skew: -90,
			urls:    []string{"text http://reklama.example.ru/"},
			defects: []string{"unencoded 8-bit bytes in From (windows-1252)", "unencoded 8-bit bytes in Subject (koi8-r)"}},
		{file: "exim-crlf.eml",
			// CRLF; Exim's "Return-path: <>"; the trap's trusted relay stepped
			// over to an IPv4-mapped sender; the trap address from the MX's "for".
			subject: "Delivery Status Notification", fromName: "Mail Delivery System", from: "mailer-daemon@bounce.example",
			to: "info@spamtrap-two.net", sender: "5.9.10.11", helo: "WIN-ABCDEF12345", envelope: "", skew: -1574,
			urls: []string{"text http://dsn.example.com/retry"}},
		{file: "mac-cr.eml",
			// Every line ends in a bare CR, as old Mac clients saved mail: the
			// folded Received chain, a folded Subject, nested multiparts, a
			// quoted-printable body with a soft break and a base64 attachment
			// are read as in an LF mail. Subject, names, addresses and the
			// attachment's digest are Python's (3.11, email.policy.default).
			subject: "Votre compte a été suspendu - action requise", fromName: "Crédit Service Client", from: "news@promo.example.fr",
			to: "anna.smith@trap-one.org", messageID: "mac-cr.20260902101238@promo.example.fr", sender: "81.2.69.160",
			helo: "mail.promo.example.fr", envelope: "news@promo.example.fr", xMailer: "Claris Emailer 2.0v3 (Macintosh)", skew: -87,
			urls: []string{"text https://verif.example-secure.fr/reactiver?id=8812&ref=mail", "html https://verif.example-secure.fr/html",
				"attachment http://cgu.example-secure.fr/cgu.html"},
			attachments: []string{"conditions.txt text/plain 93 da95f860ce09a1bc01283c6bd2970af168e193fdf1cf5c077a1bfa5a46125ce9"}},
		{file: "iso-2022-jp-padding.eml",
			// ISO-2022-JP "B" encoded words with the padding quirks of Japanese
			// spam: "==" where "=" belongs, none where "==" belongs, "=" or "=="
			// after a whole group. The decoded values are Python's (3.11,
			// email.policy.default), which reads such base64 leniently and
			// records a defect, as TIP does.
			subject: "【重要】楽天カードご利用確認のお願い", fromName: "楽天カード株式会社", from: "info@mail.rakuten-card.example.jp",
			replyTo: "support@rakuten-card.example-login.jp", to: "anna.smith@trap-one.org",
			messageID: "20260902120147.4F2A@mail.rakuten-card.example.jp", sender: "81.2.69.192",
			helo: "smtp.mail.rakuten-card.example.jp", envelope: "info@mail.rakuten-card.example.jp", xMailer: "会員様 Mailer 3.1", skew: -22,
			urls: []string{"text https://rakuten-card.example-login.jp/member/verify?id=20260902"},
			defects: []string{"From: malformed base64 in an encoded word: read leniently", "Reply-To: malformed base64 in an encoded word: read leniently",
				"Subject: malformed base64 in an encoded word: read leniently", "X-Mailer: malformed base64 in an encoded word: read leniently"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f := readFixture(t, tc.file)
			got := [...]string{f.Subject, f.FromName, f.From, f.ReplyTo, f.To, f.MessageID, f.SenderIP, f.HELO, f.EnvelopeFrom, f.XMailer}
			want := [...]string{tc.subject, tc.fromName, tc.from, tc.replyTo, tc.to, tc.messageID, tc.sender, tc.helo, tc.envelope, tc.xMailer}
			names := [...]string{"subject", "from_name", "from", "reply_to", "to", "message_id", "sender_ip", "helo", "envelope_from", "x_mailer"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %q, want %q", names[i], got[i], want[i])
				}
			}
			if f.DateSkewSeconds != tc.skew {
				t.Errorf("date skew %d, want %d", f.DateSkewSeconds, tc.skew)
			}
			if u := urlsOf(f); !slices.Equal(u, tc.urls) {
				t.Errorf("urls\n got %q\nwant %q", u, tc.urls)
			}
			var atts []string
			for _, a := range f.Attachments {
				s := strings.Join([]string{a.Name, a.Type, itoa(a.Size), a.SHA256}, " ")
				if len(a.Entries) > 0 {
					s += " [" + strings.Join(a.Entries, " ") + "]"
				}
				atts = append(atts, s)
			}
			if !slices.Equal(atts, tc.attachments) {
				t.Errorf("attachments\n got %q\nwant %q", atts, tc.attachments)
			}
			if !slices.Equal(f.Defects, tc.defects) {
				t.Errorf("defects\n got %q\nwant %q", f.Defects, tc.defects)
			}
			checkInvariants(t, f, DefaultLimits())
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// checkInvariants holds for every Facts, however broken the mail.
func checkInvariants(t testing.TB, f Facts, lim Limits) {
	t.Helper()
	if len(f.SHA256) != 64 {
		t.Errorf("sha256 %q", f.SHA256)
	}
	if f.SenderHop < -1 || f.SenderHop >= len(f.Hops) || (f.SenderHop >= 0) != (f.SenderIP != "") {
		t.Errorf("sender hop %d of %d hops, sender %q", f.SenderHop, len(f.Hops), f.SenderIP)
	}
	if f.SenderIP != "" {
		a, err := netip.ParseAddr(f.SenderIP)
		if err != nil || a.Is4In6() || a.Zone() != "" || a.String() != f.SenderIP {
			t.Errorf("sender %q is not canonical", f.SenderIP)
		}
	}
	if len(f.URLs) > lim.MaxURLs || len(f.Hops) > lim.MaxHeaders || len(f.Attachments) > lim.MaxParts {
		t.Errorf("%d URLs, %d hops, %d attachments: over the limits", len(f.URLs), len(f.Hops), len(f.Attachments))
	}
	seen := map[string]bool{}
	for _, u := range f.URLs {
		if seen[u.URL] || u.Host == "" || u.Source == "" {
			t.Errorf("URL %+v repeated or incomplete", u)
		}
		seen[u.URL] = true
	}
	if !slices.IsSorted(f.Domains) || len(slices.Compact(slices.Clone(f.Domains))) != len(f.Domains) {
		t.Errorf("domains %q not sorted and distinct", f.Domains)
	}
	for _, a := range f.Attachments {
		if len(a.SHA256) != 64 || a.Size < 0 || len(a.Entries) > lim.MaxArchiveEntries {
			t.Errorf("attachment %+v", a)
		}
	}
	if len(f.Defects) > maxDefects {
		t.Errorf("%d defects", len(f.Defects))
	}
	for _, d := range f.Defects {
		if strings.HasPrefix(d, "internal error") {
			t.Errorf("a panic was recovered: %s", d)
		}
	}
	if len(f.CampaignKey) != 16 {
		t.Errorf("campaign key %q", f.CampaignKey)
	}
	if _, err := json.Marshal(f); err != nil {
		t.Errorf("facts do not marshal: %v", err)
	}
}
