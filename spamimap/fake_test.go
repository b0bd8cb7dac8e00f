package spamimap

import (
	"fmt"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/spamimap/imaptest"
)

// fakeBox is the mailbox of a scripted server.
func fakeBox(s *imaptest.Server) catalog.Mailbox {
	return catalog.Mailbox{Name: "fake", Address: s.Addr(), TLS: "none", Username: "trap", Password: "pw",
		Mailbox: "INBOX", After: "keep", Trap: "t", Enabled: true}
}

func fakeMail(uid uint32) string {
	return fmt.Sprintf("Received: from [203.0.113.%d] by mx.trap.example\r\nFrom: a@b.example\r\nSubject: mail %d\r\n\r\nbody %d\r\n", uid, uid, uid)
}
