package mail_test

import (
	"fmt"
	"net/netip"

	"github.com/tip-project/tip/mail"
)

func ExampleExtract() {
	raw := []byte("Return-Path: <bounce@shop.example>\n" +
		"Delivered-To: info@trap.example\n" +
		"Received: from relay.trap.example (relay.trap.example [81.2.69.1])\n" +
		"\tby mx.trap.example (Postfix) with ESMTP id 1; Tue,  1 Sep 2026 10:00:05 +0000 (UTC)\n" +
		"Received: from WIN-7 (dsl-5-9-10-11.isp.example [5.9.10.11])\n" +
		"\tby relay.trap.example (Postfix) with ESMTP id 2; Tue,  1 Sep 2026 10:00:03 +0000 (UTC)\n" +
		"From: =?koi8-r?B?8NLJ18XU?= <shop@shop.example>\n" +
		"Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?=\n" +
		"Date: Tue, 1 Sep 2026 09:58:00 +0000\n" +
		"\n" +
		"Order now: hxxp://pills[.]example/buy\n")
	f := mail.Extract(raw, mail.Config{
		TrapMX:        []string{"mx.trap.example"},
		TrustedRelays: []netip.Prefix{netip.MustParsePrefix("81.2.69.1/32")},
	})
	fmt.Println(f.SenderIP, f.HELO, f.SenderHop)
	fmt.Println(f.EnvelopeFrom, f.From, f.FromName, f.To)
	fmt.Println(f.Subject, f.DateSkewSeconds)
	for _, u := range f.URLs {
		fmt.Println(u.Source, u.URL, u.Registrable)
	}
	// Output:
	// 5.9.10.11 WIN-7 1
	// bounce@shop.example shop@shop.example Привет info@trap.example
	// Grüße -125
	// text http://pills.example/buy pills.example
}
