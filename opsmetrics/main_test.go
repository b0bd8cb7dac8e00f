package opsmetrics_test

import (
	"testing"

	"github.com/tip-project/tip/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
