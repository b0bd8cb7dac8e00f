//go:build !unix

package mail

import "time"

func cpuTime() time.Duration { return 0 }
