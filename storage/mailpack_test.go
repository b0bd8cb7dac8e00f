package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func packMails(n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fmt.Appendf(nil, "Received: from bot%d\r\nSubject: offer %d\r\n\r\n%s\r\n", i, i, bytes.Repeat([]byte("buy now "), i*10)))
	}
	return out
}

// A pack is a zstd stream that describes itself: decompressed whole it is the
// mails one after the other, and scanned it yields each mail at the place the
// writer said (its group), checked against its SHA-256.
func TestMailPackDescribesItself(t *testing.T) {
	mails := packMails(5)
	mails = append(mails, mails[2], nil) // a mail given twice is packed once; an empty mail packs too
	data, packed := storage.EncodeMailPack(mails)
	if packed[5] != packed[2] {
		t.Errorf("the second copy of a mail is at %+v, the first at %+v", packed[5], packed[2])
	}
	var want []byte
	for i, m := range mails {
		if i != 5 {
			want = append(want, m...)
		}
	}
	dec, _ := zstd.NewReader(nil)
	if whole, err := dec.DecodeAll(data, nil); err != nil || !bytes.Equal(whole, want) {
		t.Fatalf("the pack decompressed whole: %d bytes, %v; want the %d bytes of the mails", len(whole), err, len(want))
	}
	var scanned []storage.PackedMail
	err := storage.ScanMailPack(data, func(p storage.PackedMail, raw []byte) error {
		if sha(raw) != p.SHA256 || int64(len(raw)) != p.Size {
			t.Errorf("scanned %+v with %d bytes", p, len(raw))
		}
		scanned = append(scanned, p)
		return nil
	})
	if err != nil || len(scanned) != 6 {
		t.Fatalf("scanned %d mails, %v", len(scanned), err)
	}
	for i, p := range append(packed[:5:5], packed[6]) {
		if scanned[i] != p {
			t.Errorf("mail %d scanned at %+v, written at %+v", i, scanned[i], p)
		}
	}
	// Any byte changed is caught by the scan.
	for _, at := range []int{0, 9, 40, len(data) / 2, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[at] ^= 0x20
		if err := storage.ScanMailPack(bad, func(storage.PackedMail, []byte) error { return nil }); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("a pack with byte %d changed scans with %v, want ErrCorrupt", at, err)
		}
	}
}

// Mails stored in a pack are read back one by one with ranged GETs, each
// checked against its SHA-256; a pack changed behind the store's back, or an
// index pointing at the wrong place, fails the read with ErrCorrupt.
func TestPackedMailsReadBackVerified(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	mails := packMails(50)
	pack, err := b.PutMailPack(ctx, mails)
	if err != nil || len(pack.Mails) != len(mails) {
		t.Fatalf("put: %+v, %v", pack, err)
	}
	for i, p := range pack.Mails {
		got, err := b.ReadPackedMail(ctx, p)
		if err != nil || !bytes.Equal(got, mails[i]) {
			t.Fatalf("mail %d: %d bytes, %v", i, len(got), err)
		}
	}
	// The same mails again make the same pack under the same key.
	again, err := b.PutMailPack(ctx, mails)
	if err != nil || again.Key != pack.Key || again.Mails[7] != pack.Mails[7] {
		t.Fatalf("the same batch packed again: %s, %v (first %s)", again.Key, err, pack.Key)
	}

	first, last := pack.Mails[0], pack.Mails[len(mails)-1]
	if first.Offset == last.Offset {
		t.Fatalf("the pack is one group of mails: %+v", pack.Mails)
	}
	wrong := first
	wrong.Offset, wrong.Length = last.Offset, last.Length
	if _, err := b.ReadPackedMail(ctx, wrong); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("a place holding other mails = %v, want ErrCorrupt", err)
	}
	wrong = first
	wrong.Offset++
	if _, err := b.ReadPackedMail(ctx, wrong); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("a place off by one = %v, want ErrCorrupt", err)
	}
	missing := pack.Mails[3]
	missing.Pack = storage.PackKey(sha([]byte("no such pack")))
	if _, err := b.ReadPackedMail(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a missing pack = %v, want ErrNotFound", err)
	}

	// One byte of one group's compressed frame changed: its mails fail, the
	// other group's still read.
	s := testenv.Stack(t)
	raw, err := minio.New(s.S3Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(s.S3AccessKey, s.S3SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := raw.GetObject(ctx, b.Bucket(), pack.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || int64(len(data)) != pack.Size {
		t.Fatalf("the pack: %d bytes, %v", len(data), err)
	}
	victim := pack.Mails[10]
	data[victim.Offset+victim.Length-6] ^= 0x01
	if _, err := raw.PutObject(ctx, b.Bucket(), pack.Key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadPackedMail(ctx, victim); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("a mail with a changed byte = %v, want ErrCorrupt", err)
	}
	if got, err := b.ReadPackedMail(ctx, last); err != nil || !bytes.Equal(got, mails[len(mails)-1]) {
		t.Errorf("a mail of the other group: %d bytes, %v", len(got), err)
	}
}

// storage.RawMail finds a mail in its pack through spam_raw, and a mail stored
// before packs (an object of its own, no row) where it always was.
func TestRawMailReadsPacksAndOldObjects(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := newStore(t)
	mails := packMails(3)
	pack, err := b.PutMailPack(ctx, mails[:2])
	if err != nil {
		t.Fatal(err)
	}
	var batch []storage.SpamRecord
	for i := range 2 {
		batch = append(batch, storage.SpamRecord{SHA256: sha(mails[i]), Size: int64(len(mails[i])), Facts: json.RawMessage(`{}`),
			Origin: "imap:trap", Name: fmt.Sprintf("7:%d", i), Raw: &pack.Mails[i]})
	}
	if n, err := db.RecordSpam(ctx, batch); err != nil || n != 2 {
		t.Fatalf("record: %d, %v", n, err)
	}
	old, err := b.PutBytes(ctx, mails[2], storage.PutOptions{ContentType: "message/rfc822"})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range mails {
		got, err := storage.RawMail(ctx, db, b, sha(m))
		if err != nil || !bytes.Equal(got, m) {
			t.Errorf("mail %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := db.PackedMail(ctx, old.SHA256); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the old mail has a pack place: %v", err)
	}
	if _, err := storage.RawMail(ctx, db, b, sha([]byte("never stored"))); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a mail never stored = %v, want ErrNotFound", err)
	}
	// A second place for a mail (a retried batch that packed differently) does
	// not move it: the first pack stays its place.
	other, err := b.PutMailPack(ctx, [][]byte{mails[1], mails[0]})
	if err != nil {
		t.Fatal(err)
	}
	batch[0].Raw, batch[1].Raw = &other.Mails[1], &other.Mails[0]
	if n, err := db.RecordSpam(ctx, batch); err != nil || n != 0 {
		t.Fatalf("the batch again: %d new, %v", n, err)
	}
	if p, err := db.PackedMail(ctx, sha(mails[0])); err != nil || p != pack.Mails[0] {
		t.Errorf("after a second pack the mail is at %+v, %v; want %+v", p, err, pack.Mails[0])
	}
	var rows int
	testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM spam_raw`).Scan(&rows)
	if rows != 2 {
		t.Errorf("%d rows in spam_raw, want 2", rows)
	}
}

// FuzzScanMailPack: a scan of any bytes ends with mails that hash right or an
// error, never a panic.
func FuzzScanMailPack(f *testing.F) {
	data, _ := storage.EncodeMailPack(packMails(3))
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pack []byte) {
		storage.ScanMailPack(pack, func(p storage.PackedMail, raw []byte) error {
			if sha(raw) != p.SHA256 {
				t.Fatalf("scanned %s with content hashing to %s", p.SHA256, sha(raw))
			}
			return nil
		})
	})
}
