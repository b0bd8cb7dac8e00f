package devstack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

func (s *Stack) startMinIO(ctx context.Context) error {
	if pid, ok := s.processAlive(MinIO); ok {
		s.logf("already running", "service", MinIO, "pid", pid)
		return nil
	}
	bin, err := s.tool("minio")
	if err != nil {
		return err
	}
	for _, p := range []int{s.MinIOPort, s.MinIOConsolePort} {
		if err := checkPortFree(MinIO, s.Host, p); err != nil {
			return err
		}
	}
	args := []string{"server", filepath.Join(s.dir(MinIO), "data"),
		"--address", s.S3Endpoint(), "--quiet", "--anonymous"}
	env := []string{
		"MINIO_ROOT_USER=" + s.S3AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.S3SecretKey,
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	}
	if s.MinIOConsolePort != 0 {
		args = append(args, "--console-address", net.JoinHostPort(s.Host, strconv.Itoa(s.MinIOConsolePort)))
	} else {
		env = append(env, "MINIO_BROWSER=off")
	}
	pid, err := s.spawn(MinIO, env, bin, args...)
	if err != nil {
		return err
	}
	url := "http://" + s.S3Endpoint() + "/minio/health/ready"
	alive := func() bool { _, ok := s.processAlive(MinIO); return ok }
	if err := s.waitFor(ctx, MinIO, 60*time.Second, alive, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return err
	}
	s.logf("started", "service", MinIO, "pid", pid, "address", s.S3Endpoint())
	return nil
}
