package otp

import (
	"strconv"
	"strings"
	"time"
)

// Locales with message and page translations. The first is the fallback.
var Locales = []string{"en", "ja"}

// ComposeSMS returns the text of a code message in locale: the code, the
// service, how long it lives, and the warning not to share it. With
// webOTPHost set, a last line "@host #code" lets browsers that support WebOTP
// fill the code in (the host comes from configuration, never from a request).
func ComposeSMS(locale, service, code string, ttl time.Duration, webOTPHost string) string {
	minutes := strconv.Itoa(int((ttl + time.Minute - 1) / time.Minute))
	var b strings.Builder
	switch locale {
	case "ja":
		b.WriteString(service + "の確認コード: " + code + "\n")
		b.WriteString(minutes + "分以内に入力してください。このコードは誰にも教えないでください。")
	default:
		b.WriteString(service + " code: " + code + "\n")
		b.WriteString("It expires in " + minutes + " min. Never share this code with anyone.")
	}
	if webOTPHost != "" {
		b.WriteString("\n\n@" + webOTPHost + " #" + code)
	}
	return b.String()
}
