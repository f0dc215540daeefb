package pages

// captchaCatalogs are the sentences of the CAPTCHA before a send (issue
// 15), merged into catalogs.
var captchaCatalogs = map[string]map[string]string{
	"en": {
		"captcha_working":     "Checking this browser before we send a code…",
		"captcha_done":        "Ready: you can send the code.",
		"captcha_image_lead":  "Before we send a code, type the characters in the picture.",
		"captcha_image_alt":   "Five distorted letters and digits to type",
		"captcha_image_label": "Characters in the picture",
		"captcha_required":    "Before we send a code, we need to check this is not an automated request. Wait for the check below to finish, then send again.",
		"captcha_wrong":       "That check did not pass. Try again with the new one below.",
		"captcha_expired":     "That check expired. Try again with the new one below.",
		"captcha_used":        "That check was already used. Try again with the new one below.",
		"captcha_widget_lead": "Before we send a code, complete the check below.",
		"captcha_unavailable": "We could not check this request right now, so no code was sent. Try again in a few minutes.",
	},
	"ja": {
		"captcha_working":     "コードを送信する前に、このブラウザーを確認しています…",
		"captcha_done":        "確認が完了しました。コードを送信できます。",
		"captcha_image_lead":  "コードを送信する前に、画像の文字を入力してください。",
		"captcha_image_alt":   "入力する5文字のゆがんだ英数字",
		"captcha_image_label": "画像の文字",
		"captcha_required":    "コードを送信する前に、自動送信でないことを確認する必要があります。下の確認が終わってから、もう一度送信してください。",
		"captcha_wrong":       "確認に失敗しました。下の新しい確認でもう一度お試しください。",
		"captcha_expired":     "確認の有効期限が切れました。下の新しい確認でもう一度お試しください。",
		"captcha_used":        "この確認はすでに使われています。下の新しい確認でもう一度お試しください。",
		"captcha_widget_lead": "コードを送信する前に、下の確認を完了してください。",
		"captcha_unavailable": "現在この操作を確認できないため、コードは送信されませんでした。数分後にもう一度お試しください。",
	},
}

func init() {
	for lang, msgs := range captchaCatalogs {
		for k, v := range msgs {
			catalogs[lang][k] = v
		}
	}
}
