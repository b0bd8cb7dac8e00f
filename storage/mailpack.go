package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
)

// A mail pack is one S3 object holding a batch of raw mails, so that an ingest
// writes one object per batch instead of one per mail. The mails go in groups
// of about packGroupBytes: each group is a zstd skippable frame that names its
// mails (SHA-256 and size of each, in order) followed by one zstd frame of
// their bytes one after the other. So the pack is a valid zstd stream (`zstd
// -d` prints the mails one after the other), it describes itself without the
// database (ScanMailPack), a group compresses far better and at less CPU than
// each mail alone (mails share most of their headers), and one mail is read by
// a ranged GET of its group, decompressed and checked against the SHA-256
// asked for. The key is the SHA-256 of the pack's bytes, so a retried batch
// that packs the same mails writes the same object again.

// PackedMail says where one mail is in a pack.
type PackedMail struct {
	SHA256 string
	Pack   string // the pack's object key
	Offset int64  // of the mail's group in the pack
	Length int64  // of the group: its skippable frame and zstd frame
	Size   int64  // of the mail itself
}

// MailPack is a stored pack and the mails in it, in the order given.
type MailPack struct {
	Key    string
	Size   int64
	Mails  []PackedMail
	Stored bool // false when nothing was written (no mails)
}

const (
	// skippableMagic is the first of zstd's sixteen skippable-frame magic
	// numbers (0x184D2A50–0x184D2A5F): decoders pass over such a frame.
	skippableMagic = 0x184D2A50
	// A group's skippable frame: magic, frame size, the number of mails, and
	// a SHA-256 and a size for each.
	groupHeader    = 4 + 4 + 4
	groupEntry     = sha256.Size + 8
	packGroupBytes = 64 << 10
	// maxGroupMails bounds the mails a group's index may claim, so a damaged
	// index cannot ask for a large allocation.
	maxGroupMails = 1 << 16
	// PackContentType is the content type of a pack: a zstd stream.
	PackContentType = "application/zstd"
	metaPackMails   = "Tip-Pack-Mails"
)

// PackKey is the object key of a pack with the given SHA-256.
func PackKey(sha string) string { return "spampack/" + sha[:2] + "/" + sha[2:4] + "/" + sha }

// packDecoder decodes a mail's frame; DecodeAll is safe for concurrent use, and
// the memory bound keeps a hostile frame from asking for more.
var packDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20), zstd.WithDecoderMaxWindow(64<<20))

// EncodeMailPack builds a pack of raw mails in memory. A mail given twice is
// packed once; every entry of the result still names where its mail is.
func EncodeMailPack(mails [][]byte) ([]byte, []PackedMail) {
	var buf bytes.Buffer
	out := make([]PackedMail, len(mails))
	at := map[string]int{} // the first index of each SHA-256 given
	var group []int        // indexes of the mails of the group being built
	var content []byte
	flush := func() {
		if len(group) == 0 {
			return
		}
		start := int64(buf.Len())
		var hdr [groupHeader]byte
		binary.LittleEndian.PutUint32(hdr[0:], skippableMagic)
		binary.LittleEndian.PutUint32(hdr[4:], uint32(4+len(group)*groupEntry))
		binary.LittleEndian.PutUint32(hdr[8:], uint32(len(group)))
		buf.Write(hdr[:])
		for _, i := range group {
			sum, _ := hex.DecodeString(out[i].SHA256)
			buf.Write(sum)
			buf.Write(binary.LittleEndian.AppendUint64(nil, uint64(out[i].Size)))
		}
		buf.Write(smallEncoder.EncodeAll(content, make([]byte, 0, len(content)/3+64)))
		for _, i := range group {
			out[i].Offset, out[i].Length = start, int64(buf.Len())-start
		}
		group, content = group[:0], content[:0]
	}
	for i, raw := range mails {
		sum := sha256.Sum256(raw)
		sha := hex.EncodeToString(sum[:])
		out[i] = PackedMail{SHA256: sha, Size: int64(len(raw))}
		if _, ok := at[sha]; ok {
			continue
		}
		at[sha] = i
		group, content = append(group, i), append(content, raw...)
		if len(content) >= packGroupBytes {
			flush()
		}
	}
	flush()
	for i := range out {
		out[i] = out[at[out[i].SHA256]]
	}
	return buf.Bytes(), out
}

// PutMailPack stores raw mails as one pack and says where each one is. Storing
// the same mails in the same order again writes the same key with the same bytes.
func (b *BlobStore) PutMailPack(ctx context.Context, mails [][]byte) (MailPack, error) {
	if len(mails) == 0 {
		return MailPack{}, nil
	}
	data, packed := EncodeMailPack(mails)
	sum := sha256.Sum256(data)
	key := PackKey(hex.EncodeToString(sum[:]))
	for i := range packed {
		packed[i].Pack = key
	}
	_, err := b.client.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType:  PackContentType,
		NumThreads:   1,
		UserMetadata: map[string]string{metaPackMails: strconv.Itoa(len(mails))},
	})
	if err != nil {
		return MailPack{}, fmt.Errorf("put %s: %w", key, b.explain(err))
	}
	return MailPack{Key: key, Size: int64(len(data)), Mails: packed, Stored: true}, nil
}

// ReadPackedMail reads one mail of a pack with a ranged GET and returns it only
// if it hashes to p.SHA256 (ErrCorrupt otherwise).
func (b *BlobStore) ReadPackedMail(ctx context.Context, p PackedMail) ([]byte, error) {
	if !hexSHA.MatchString(p.SHA256) || p.Length <= groupHeader || p.Offset < 0 || p.Length > 512<<20 {
		return nil, fmt.Errorf("%w: mail %s: a pack location %+v that cannot be", ErrCorrupt, p.SHA256, p)
	}
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(p.Offset, p.Offset+p.Length-1); err != nil {
		return nil, err
	}
	obj, err := b.client.GetObject(ctx, b.bucket, p.Pack, opts)
	if err != nil {
		return nil, b.explain(err)
	}
	defer obj.Close()
	frames := make([]byte, p.Length)
	if _, err := io.ReadFull(obj, frames); err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "NoSuchKey" || resp.StatusCode == 404) {
			return nil, fmt.Errorf("%w: pack %s of mail %s", ErrNotFound, p.Pack, p.SHA256)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: mail %s: pack %s is shorter than its index says", ErrCorrupt, p.SHA256, p.Pack)
		}
		return nil, fmt.Errorf("read mail %s from %s: %w", p.SHA256, p.Pack, b.explain(err))
	}
	return decodePackedMail(frames, p.SHA256)
}

// decodePackedMail decodes the group of a mail (its skippable frame and its
// zstd frame) and returns the mail asked for, checked against its SHA-256.
func decodePackedMail(frames []byte, want string) ([]byte, error) {
	var raw []byte
	err := decodeGroup(frames, func(sha string, mail []byte) error {
		if sha == want && raw == nil {
			raw = mail
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: mail %s: %v", ErrCorrupt, want, err)
	case raw == nil:
		return nil, fmt.Errorf("%w: mail %s: not in the group at that place", ErrCorrupt, want)
	}
	return raw, nil
}

// groupIndex reads a group's skippable frame: the SHA-256 and size of each of
// its mails, and the frame's length.
func groupIndex(b []byte) (shas []string, sizes []int64, n int, err error) {
	if len(b) < groupHeader || binary.LittleEndian.Uint32(b) != skippableMagic {
		return nil, nil, 0, errors.New("no group of mails at that place")
	}
	count := int(binary.LittleEndian.Uint32(b[8:]))
	if count == 0 || count > maxGroupMails || binary.LittleEndian.Uint32(b[4:]) != uint32(4+count*groupEntry) {
		return nil, nil, 0, errors.New("a group index that does not add up")
	}
	n = groupHeader + count*groupEntry
	if len(b) < n {
		return nil, nil, 0, errors.New("a group index cut short")
	}
	for e := b[groupHeader:n]; len(e) > 0; e = e[groupEntry:] {
		size := binary.LittleEndian.Uint64(e[sha256.Size:])
		if size > 1<<40 {
			return nil, nil, 0, fmt.Errorf("a mail of %d bytes in a group index", size)
		}
		shas, sizes = append(shas, hex.EncodeToString(e[:sha256.Size])), append(sizes, int64(size))
	}
	return shas, sizes, n, nil
}

// decodeGroup decodes one group (exactly the bytes of its two frames) and
// calls fn with each mail, each checked against its SHA-256.
func decodeGroup(b []byte, fn func(sha string, raw []byte) error) error {
	shas, sizes, n, err := groupIndex(b)
	if err != nil {
		return err
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	if total > 256<<20 {
		return fmt.Errorf("a group of %d bytes", total)
	}
	content, err := packDecoder.DecodeAll(b[n:], make([]byte, 0, total))
	if err != nil {
		return err
	}
	if int64(len(content)) != total {
		return fmt.Errorf("a group of %d bytes where its index says %d", len(content), total)
	}
	for i, sha := range shas {
		raw := content[:sizes[i]:sizes[i]]
		content = content[sizes[i]:]
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != sha {
			return fmt.Errorf("mail %s does not hash to its name", sha)
		}
		if err := fn(sha, raw); err != nil {
			return err
		}
	}
	return nil
}

// ScanMailPack walks a pack's bytes and calls fn with each mail's place and
// content, each checked against its SHA-256: what rebuilds the index of a pack
// without the database, and what checks a pack whole.
func ScanMailPack(pack []byte, fn func(p PackedMail, raw []byte) error) error {
	for off := int64(0); off < int64(len(pack)); {
		_, _, n, err := groupIndex(pack[off:])
		if err != nil {
			return fmt.Errorf("%w: pack offset %d: %v", ErrCorrupt, off, err)
		}
		f, err := zstdFrameLen(pack[off+int64(n):])
		if err != nil {
			return fmt.Errorf("%w: pack offset %d: %v", ErrCorrupt, off, err)
		}
		length := int64(n) + f
		var stop error
		err = decodeGroup(pack[off:off+length], func(sha string, raw []byte) error {
			stop = fn(PackedMail{SHA256: sha, Offset: off, Length: length, Size: int64(len(raw))}, raw)
			return stop
		})
		if stop != nil {
			return stop
		}
		if err != nil {
			return fmt.Errorf("%w: pack offset %d: %v", ErrCorrupt, off, err)
		}
		off += length
	}
	return nil
}

// zstdFrameLen is the length of the zstd frame b starts with, read from its
// block headers (RFC 8878, section 3.1.1).
func zstdFrameLen(b []byte) (int64, error) {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != 0xFD2FB528 {
		return 0, errors.New("no zstd frame")
	}
	fhd := b[4]
	dictID := [4]int{0, 1, 2, 4}[fhd&3]
	single := fhd>>5&1 == 1
	fcs := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	pos := 5 + dictID + fcs
	if !single {
		pos++ // the window descriptor
	}
	for {
		if pos+3 > len(b) {
			return 0, errors.New("a zstd frame cut short")
		}
		h := uint32(b[pos]) | uint32(b[pos+1])<<8 | uint32(b[pos+2])<<16
		last, typ, size := h&1 == 1, h>>1&3, int(h>>3)
		pos += 3
		switch typ {
		case 1: // RLE: one byte repeated
			size = 1
		case 3:
			return 0, errors.New("a reserved zstd block type")
		}
		pos += size
		if pos > len(b) {
			return 0, errors.New("a zstd frame cut short")
		}
		if last {
			break
		}
	}
	if fhd>>2&1 == 1 {
		pos += 4 // the content checksum
	}
	if pos > len(b) {
		return 0, errors.New("a zstd frame cut short")
	}
	return int64(pos), nil
}
