package feeds_test

import (
	"fmt"
	"strings"

	"github.com/tip-project/tip/feeds"
)

func ExampleParse() {
	body := "; Spamhaus DROP List\r\n1.4.0.5/17 ; SBL256893\r\n10.0.0.0/8 ; SBL1\r\n"
	st, err := feeds.Parse("spamhaus-drop", strings.NewReader(body), feeds.Options{}, func(ind feeds.Indicator) error {
		fmt.Println(ind.Type, ind.Value, ind.Ref)
		return nil
	})
	fmt.Println(st.Indicators, st.Dropped, err)
	// Output:
	// cidr 1.4.0.0/17 SBL256893
	// 1 map[private:1] <nil>
}
