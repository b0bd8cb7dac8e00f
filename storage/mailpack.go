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
// writes one object per batch instead of one per mail. Each mail is a zstd
// frame of its own behind a zstd skippable frame that names it (its SHA-256 and
// size): the pack is a valid zstd stream (`zstd -d` prints the mails one after
// the other), it describes itself without the database (ScanMailPack), and one
// mail is read by a ranged GET of its two frames. The key is the SHA-256 of the
// pack's bytes, so a retried batch that packs the same mails writes the same
// object again.

// PackedMail says where one mail is in a pack.
type PackedMail struct {
	SHA256 string
	Pack   string // the pack's object key
	Offset int64  // of the mail's skippable frame in the pack
	Length int64  // of its skippable frame and zstd frame together
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
	// packHeader is a mail's skippable frame: magic, frame size, SHA-256, size.
	packHeader     = 4 + 4 + sha256.Size + 8
	packHeaderData = sha256.Size + 8
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
	at := map[string]PackedMail{}
	var hdr [packHeader]byte
	for i, raw := range mails {
		sum := sha256.Sum256(raw)
		sha := hex.EncodeToString(sum[:])
		if p, ok := at[sha]; ok {
			out[i] = p
			continue
		}
		start := int64(buf.Len())
		binary.LittleEndian.PutUint32(hdr[0:], skippableMagic)
		binary.LittleEndian.PutUint32(hdr[4:], packHeaderData)
		copy(hdr[8:], sum[:])
		binary.LittleEndian.PutUint64(hdr[8+sha256.Size:], uint64(len(raw)))
		buf.Write(hdr[:])
		buf.Write(smallEncoder.EncodeAll(raw, make([]byte, 0, len(raw)/2+64)))
		p := PackedMail{SHA256: sha, Offset: start, Length: int64(buf.Len()) - start, Size: int64(len(raw))}
		at[sha] = p
		out[i] = p
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
	if !hexSHA.MatchString(p.SHA256) || p.Length <= packHeader || p.Offset < 0 {
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

// decodePackedMail decodes one mail's frames (its skippable frame and its zstd
// frame) and checks them against the SHA-256 asked for.
func decodePackedMail(frames []byte, want string) ([]byte, error) {
	sha, size, err := packEntryHeader(frames)
	if err != nil {
		return nil, fmt.Errorf("%w: mail %s: %v", ErrCorrupt, want, err)
	}
	if sha != want {
		return nil, fmt.Errorf("%w: mail %s: the pack holds %s at that place", ErrCorrupt, want, sha)
	}
	raw, err := packDecoder.DecodeAll(frames[packHeader:], make([]byte, 0, min(size, 64<<20)))
	if err != nil {
		return nil, fmt.Errorf("%w: mail %s: %v", ErrCorrupt, want, err)
	}
	if sum := sha256.Sum256(raw); int64(len(raw)) != size || hex.EncodeToString(sum[:]) != want {
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, want)
	}
	return raw, nil
}

// packEntryHeader reads a mail's skippable frame: the SHA-256 and size it names.
func packEntryHeader(b []byte) (sha string, size int64, err error) {
	if len(b) < packHeader {
		return "", 0, errors.New("a pack entry shorter than its header")
	}
	if binary.LittleEndian.Uint32(b) != skippableMagic || binary.LittleEndian.Uint32(b[4:]) != packHeaderData {
		return "", 0, errors.New("no pack entry header at that place")
	}
	n := binary.LittleEndian.Uint64(b[8+sha256.Size:])
	if n > 1<<40 {
		return "", 0, fmt.Errorf("a pack entry of %d bytes", n)
	}
	return hex.EncodeToString(b[8 : 8+sha256.Size]), int64(n), nil
}

// ScanMailPack walks a pack's bytes and calls fn with each mail's place and
// content, each checked against its SHA-256: what rebuilds the index of a pack
// without the database, and what checks a pack whole.
func ScanMailPack(pack []byte, fn func(p PackedMail, raw []byte) error) error {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return err
	}
	defer dec.Close()
	for off := int64(0); off < int64(len(pack)); {
		sha, size, err := packEntryHeader(pack[off:])
		if err != nil {
			return fmt.Errorf("%w: pack offset %d: %v", ErrCorrupt, off, err)
		}
		n, err := zstdFrameLen(pack[off+packHeader:])
		if err != nil {
			return fmt.Errorf("%w: pack offset %d: %v", ErrCorrupt, off, err)
		}
		p := PackedMail{SHA256: sha, Offset: off, Length: packHeader + n, Size: size}
		raw, err := decodePackedMail(pack[off:off+p.Length], sha)
		if err != nil {
			return err
		}
		if err := fn(p, raw); err != nil {
			return err
		}
		off += p.Length
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
