package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// BlobStore keeps raw material in an S3 bucket under content-addressed keys: the
// key is derived from the SHA-256 of the original bytes, so storing the same content
// twice is a no-op and a retried activity never creates a second object.
type BlobStore struct {
	client   *minio.Client
	bucket   string
	endpoint string
	// SpoolDir holds the temporary file a Put streams through while it hashes; the
	// key is known only after the last byte. Empty means os.TempDir().
	SpoolDir string
	// PartSize is the multipart upload part size; it bounds upload memory.
	PartSize uint64
}

// S3Options says how to reach the bucket.
type S3Options struct {
	Endpoint, AccessKey, SecretKey, Bucket, Region string
	Secure                                         bool
}

// Encoding of a stored object.
const (
	EncodingIdentity = "identity"
	EncodingZstd     = "zstd"
)

// Compression chooses whether Put compresses.
type Compression int

const (
	// CompressAuto compresses unless the content starts like an already-compressed
	// format (gzip, zstd, xz, bzip2, 7z, zip, images); raw text always compresses.
	CompressAuto Compression = iota
	CompressNever
	CompressAlways
)

// Blob describes one stored object.
type Blob struct {
	SHA256      string // hex of the original content; the identity of the blob
	Key         string // object key in the bucket
	Size        int64  // original size
	StoredSize  int64  // size in the bucket
	Encoding    string // EncodingIdentity or EncodingZstd
	ContentType string
	Existed     bool // Put found the content already stored
}

// PutOptions tune one Put.
type PutOptions struct {
	ContentType string
	Compression Compression
	// Tags are the new object's S3 tags (lifecycle rules select by them:
	// RawTag); an object already stored keeps its own.
	Tags map[string]string
}

// ErrNotFound means no such thing is stored: a blob of that hash, a source, an
// allowlist, a mail.
var ErrNotFound = errors.New("not found")

// ErrCorrupt means stored content did not hash to its key.
var ErrCorrupt = errors.New("blob content does not match its SHA-256")

const (
	metaSHA      = "Tip-Sha256"
	metaSize     = "Tip-Size"
	metaEncoding = "Tip-Encoding"
)

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

// BlobKey is the object key of a hash: sha256/ab/cd/abcd… spreads keys over prefixes.
func BlobKey(sha string) string { return "sha256/" + sha[:2] + "/" + sha[2:4] + "/" + sha }

// NewBlobStore builds a client; it does not contact the server (see Check).
func NewBlobStore(o S3Options) (*BlobStore, error) {
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure: o.Secure,
		Region: o.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 at %s: %v; fix s3.endpoint / TIP_S3_ENDPOINT", o.Endpoint, err)
	}
	return &BlobStore{client: c, bucket: o.Bucket, endpoint: c.EndpointURL().String(), PartSize: 16 << 20}, nil
}

// Bucket is the bucket's name.
func (b *BlobStore) Bucket() string { return b.bucket }

// Endpoint is the server's URL.
func (b *BlobStore) Endpoint() string { return b.endpoint }

// Check verifies that the server answers, accepts the credentials and holds the bucket.
func (b *BlobStore) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return b.explain(err)
	}
	if !ok {
		return fmt.Errorf("s3 at %s has no bucket %q; run `tip setup` (the worker also creates it at start)", b.endpoint, b.bucket)
	}
	return nil
}

// EnsureBucket creates the bucket if it is missing.
func (b *BlobStore) EnsureBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return b.explain(err)
	}
	if ok {
		return nil
	}
	if err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{}); err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists") {
			return nil
		}
		return b.explain(err)
	}
	return nil
}

// explain turns a minio-go error into one sentence naming the service and the fix.
func (b *BlobStore) explain(err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied":
			return fmt.Errorf("s3 at %s rejected the credentials (%s); fix s3.access_key/s3.secret_key or TIP_S3_ACCESS_KEY/TIP_S3_SECRET_KEY", b.endpoint, resp.Code)
		case "NoSuchBucket":
			return fmt.Errorf("s3 at %s has no bucket %q; run `tip setup`", b.endpoint, b.bucket)
		}
		return fmt.Errorf("s3 at %s: %s (%s)", b.endpoint, resp.Message, resp.Code)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("s3 at %s is not reachable (connection refused); start it with `make up` or fix s3.endpoint / TIP_S3_ENDPOINT", b.endpoint)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("s3 at %s did not answer in time; check that it runs and that s3.endpoint / TIP_S3_ENDPOINT points at it", b.endpoint)
	}
	return fmt.Errorf("s3 at %s: %v", b.endpoint, err)
}

// Put streams r into the store. It hashes and (optionally) compresses into a spool
// file, so memory stays bounded whatever the size, then uploads under the hash's key
// unless that key already exists.
func (b *BlobStore) Put(ctx context.Context, r io.Reader, o PutOptions) (Blob, error) {
	spool, err := os.CreateTemp(b.SpoolDir, "tip-blob-*")
	if err != nil {
		return Blob{}, fmt.Errorf("blob spool: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()

	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(16)
	compress := o.Compression == CompressAlways || (o.Compression == CompressAuto && !alreadyCompressed(head))
	h := sha256.New()
	size, err := spoolContent(ctx, spool, io.TeeReader(br, h), compress)
	if err != nil {
		return Blob{}, err
	}
	stored, err := spool.Seek(0, io.SeekCurrent)
	if err != nil {
		return Blob{}, err
	}
	blob := Blob{
		SHA256:      hex.EncodeToString(h.Sum(nil)),
		Size:        size,
		StoredSize:  stored,
		Encoding:    EncodingIdentity,
		ContentType: o.ContentType,
	}
	if compress {
		blob.Encoding = EncodingZstd
	}
	blob.Key = BlobKey(blob.SHA256)
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return Blob{}, err
	}
	return b.upload(ctx, blob, spool, o)
}

// upload stores content (stored bytes, possibly compressed) under blob's key
// unless that key already exists.
func (b *BlobStore) upload(ctx context.Context, blob Blob, content io.Reader, o PutOptions) (Blob, error) {
	if existing, err := b.Stat(ctx, blob.SHA256); err == nil {
		existing.Existed = true
		return existing, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Blob{}, err
	}
	_, err := b.client.PutObject(ctx, b.bucket, blob.Key, content, blob.StoredSize, minio.PutObjectOptions{
		ContentType: o.ContentType,
		UserTags:    o.Tags,
		PartSize:    b.PartSize,
		NumThreads:  1,
		UserMetadata: map[string]string{
			metaSHA:      blob.SHA256,
			metaSize:     strconv.FormatInt(blob.Size, 10),
			metaEncoding: blob.Encoding,
		},
	})
	if err != nil {
		return Blob{}, fmt.Errorf("put %s: %w", blob.Key, b.explain(err))
	}
	return blob, nil
}

// smallEncoder compresses in-memory values; EncodeAll is safe for concurrent use.
var smallEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4<<20))

// PutBytes stores a small in-memory value (a mail) without a spool file.
func (b *BlobStore) PutBytes(ctx context.Context, data []byte, o PutOptions) (Blob, error) {
	sum := sha256.Sum256(data)
	blob := Blob{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Encoding: EncodingIdentity, ContentType: o.ContentType}
	blob.Key = BlobKey(blob.SHA256)
	payload := data
	if o.Compression == CompressAlways || (o.Compression == CompressAuto && !alreadyCompressed(data)) {
		payload = smallEncoder.EncodeAll(data, make([]byte, 0, len(data)/2))
		blob.Encoding = EncodingZstd
	}
	blob.StoredSize = int64(len(payload))
	return b.upload(ctx, blob, bytes.NewReader(payload), o)
}

// spoolContent copies r to w, through zstd when compress is set, and returns the
// number of bytes read from r.
func spoolContent(ctx context.Context, w io.Writer, r io.Reader, compress bool) (int64, error) {
	r = ctxReader{ctx, r}
	if !compress {
		n, err := io.Copy(w, r)
		if err != nil {
			return n, fmt.Errorf("blob spool: %w", err)
		}
		return n, nil
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4<<20))
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(enc, r)
	if err != nil {
		enc.Close()
		return n, fmt.Errorf("blob spool: %w", err)
	}
	if err := enc.Close(); err != nil {
		return n, fmt.Errorf("blob spool: %w", err)
	}
	return n, nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var compressedMagic = [][]byte{
	{0x1f, 0x8b},                       // gzip
	{0x28, 0xb5, 0x2f, 0xfd},           // zstd
	{0xfd, '7', 'z', 'X', 'Z', 0x00},   // xz
	{'B', 'Z', 'h'},                    // bzip2
	{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}, // 7z
	{'P', 'K', 0x03, 0x04},             // zip
	{0x89, 'P', 'N', 'G'},              // png
	{0xff, 0xd8, 0xff},                 // jpeg
	{'R', 'a', 'r', '!', 0x1a, 0x07},   // rar
	{0x04, 0x22, 0x4d, 0x18},           // lz4
}

func alreadyCompressed(head []byte) bool {
	for _, m := range compressedMagic {
		if bytes.HasPrefix(head, m) {
			return true
		}
	}
	return false
}

// Stat returns a blob's description, or ErrNotFound.
func (b *BlobStore) Stat(ctx context.Context, sha string) (Blob, error) {
	if !hexSHA.MatchString(sha) {
		return Blob{}, fmt.Errorf("blob: %q is not a lower-case hex SHA-256", sha)
	}
	info, err := b.client.StatObject(ctx, b.bucket, BlobKey(sha), minio.StatObjectOptions{})
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "NoSuchKey" || resp.StatusCode == 404) {
			return Blob{}, fmt.Errorf("%w: blob %s", ErrNotFound, sha)
		}
		return Blob{}, b.explain(err)
	}
	return blobFromInfo(sha, info), nil
}

func blobFromInfo(sha string, info minio.ObjectInfo) Blob {
	blob := Blob{SHA256: sha, Key: info.Key, StoredSize: info.Size, Size: info.Size, Encoding: EncodingIdentity, ContentType: info.ContentType}
	if enc := info.UserMetadata[metaEncoding]; enc != "" {
		blob.Encoding = enc
	}
	if n, err := strconv.ParseInt(info.UserMetadata[metaSize], 10, 64); err == nil {
		blob.Size = n
	}
	return blob
}

// Open streams a blob's original content. The reader decompresses as it goes and,
// at the end, returns ErrCorrupt instead of io.EOF if the bytes do not hash to sha.
func (b *BlobStore) Open(ctx context.Context, sha string) (io.ReadCloser, Blob, error) {
	blob, err := b.Stat(ctx, sha)
	if err != nil {
		return nil, Blob{}, err
	}
	obj, err := b.client.GetObject(ctx, b.bucket, blob.Key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Blob{}, b.explain(err)
	}
	vr := &verifyingReader{want: sha, h: sha256.New(), closers: []io.Closer{obj}}
	switch blob.Encoding {
	case EncodingIdentity:
		vr.r = obj
	case EncodingZstd:
		dec, err := zstd.NewReader(obj, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			obj.Close()
			return nil, Blob{}, err
		}
		vr.r = dec
		vr.closers = append(vr.closers, closerFunc(func() error { dec.Close(); return nil }))
	default:
		obj.Close()
		return nil, Blob{}, fmt.Errorf("blob %s: unknown encoding %q", sha, blob.Encoding)
	}
	return vr, blob, nil
}

// ReadAll returns a small blob's content; use Open for anything large.
func (b *BlobStore) ReadAll(ctx context.Context, sha string) ([]byte, error) {
	rc, _, err := b.Open(ctx, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

type verifyingReader struct {
	r       io.Reader
	h       hash.Hash
	want    string
	closers []io.Closer
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && hex.EncodeToString(v.h.Sum(nil)) != v.want {
		return n, fmt.Errorf("%w: %s", ErrCorrupt, v.want)
	}
	return n, err
}

func (v *verifyingReader) Close() error {
	var errs []error
	for i := len(v.closers) - 1; i >= 0; i-- {
		errs = append(errs, v.closers[i].Close())
	}
	return errors.Join(errs...)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
