package caddymodule

import (
	"strconv"
	"sync"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// A refusal's page (the 429 of a limit or a cooldown, the 422 of a wrong
// code or a dead challenge) is the send page or the code page with a
// message. Under a bot flood it is most of what the handler writes, so it
// is written from a pages.Frame, rendered once per language and variant,
// with the request's values put in (issue 17): the bytes are the
// template's (TestFramedSendPageIsTheTemplates,
// TestFramedCodePageIsTheTemplates). The same pages without a message, as
// a step-up first shows them, come from frames too.

// pageFrames are a handler's send- and code-page frames, built when first
// needed.
type pageFrames struct {
	mu sync.Mutex
	// by variant; nil: this variant can't be framed, render the template
	frames map[frameKey]*pages.Frame
}

// frameKey is what changes a page's text other than its spliced values.
// Every part is from the configuration or a handful of words (the page,
// the language, the message's status, the delivery report's sentence),
// never from the request as is.
type frameKey struct {
	page, lang, status, action string
	message                    bool // a message; none on a page shown as asked for
	delivery, deliveryStatus   string
	masked, canChange, canCall bool
	waiting                    bool // RetryIn > 0
}

// maxFrames bounds pageFrames: the variants are a few per language and
// action, so a full map means something unforeseen, and the template.
const maxFrames = 256

// The values a frame puts in, in this order.
const (
	slotNonce = iota
	slotCSRF
	slotMessage
	slotMasked
	slotPhoneText // the masked number in the catalog's sentences, unbreakable
	slotReturn
	slotReturnQuery // the return path in the other language's link
	slotRetryIn     // seconds to wait for a resend, when waiting
	slotCount
)

var frameSplices = []pages.Splice{
	slotNonce: pages.Escaped, slotCSRF: pages.Escaped, slotMessage: pages.Escaped, slotMasked: pages.Escaped,
	slotPhoneText: pages.Escaped, slotReturn: pages.Escaped, slotReturnQuery: pages.QueryEscaped, slotRetryIn: pages.Digits,
}

var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// writeFramed writes the send or code page from its frame when data is a
// plain refusal (a message, and nothing a frame does not splice) on the
// embedded pages, and says whether it did; false: nothing was written.
func (h *Handler) writeFramed(v *visit, status int, page string, data pages.Data, nonce string) bool {
	if h.frames == nil || h.pages != pages.Default || !framable(page, data) {
		return false
	}
	f := h.frameFor(frameKey{page: page, lang: v.lang, status: data.Status, action: data.Action, message: data.Message != "",
		delivery: data.Delivery, deliveryStatus: data.DeliveryStatus, masked: data.Masked != "",
		canChange: data.CanChange, canCall: data.CanCall, waiting: page == pages.Code && data.RetryIn > 0})
	if f == nil {
		return false
	}
	var values [slotCount]string
	values[slotNonce], values[slotCSRF], values[slotMessage] = nonce, h.csrfToken(v), data.Message
	values[slotMasked], values[slotPhoneText] = data.Masked, unbreakable.Replace(data.Masked)
	values[slotReturn], values[slotReturnQuery] = v.ret, urlQueryEscape(v.ret)
	values[slotRetryIn] = strconv.Itoa(max(data.RetryIn, 1)) // unused when not waiting
	buf := frameBuffers.Get().(*[]byte)
	defer frameBuffers.Put(buf)
	body, ok := f.Append((*buf)[:0], values[:])
	if !ok {
		return false
	}
	*buf = body
	h.pageHeaders(v, nonce)
	v.w.WriteHeader(status)
	_, _ = v.w.Write(body) // as for the template: a client gone is not an error to report
	return true
}

// framable says whether a page's data is what a frame shows: a message or
// none, the masked number, and on the send page the change link, on the
// code page the delivery report, the call button and the wait for a
// resend; nothing else. Key and Remaining are on neither page (the message
// says the attempts left).
func framable(page string, d pages.Data) bool {
	plain := d.Captcha == nil && !d.Enrolling && d.Formatted == "" && !d.Changing && d.Title == "" &&
		d.ResumeURL == "" && d.ResumeField == "" && d.ResumeID == "" && d.T == nil && d.Nonce == "" && d.CSRF == "" && d.OtherURL == ""
	switch page {
	case pages.Send:
		return plain && d.Delivery == "" && d.DeliveryStatus == "" && !d.CanCall
	case pages.Code:
		return plain && d.Masked != "" && !d.CanChange && d.RetryIn >= 0
	}
	return false
}

// frameFor is the frame of a variant, built on first use; nil when the
// page can't be framed or the map is full.
func (h *Handler) frameFor(k frameKey) *pages.Frame {
	fs := h.frames
	fs.mu.Lock()
	f, ok := fs.frames[k]
	fs.mu.Unlock()
	if ok {
		return f
	}
	f, err := h.pages.NewFrame(k.page, frameSplices, func(values []string) pages.Data { return h.frameData(k, values) })
	if err != nil {
		f = nil // the template, always, for this variant
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.frames) < maxFrames {
		fs.frames[k] = f
	}
	return f
}

// frameData is the page's data as render fills it, with values in the
// spliced fields.
func (h *Handler) frameData(k frameKey, values []string) pages.Data {
	codeLength := h.service.Config().CodeLength
	masked, phoneText, message := "", "", ""
	if k.message {
		message = values[slotMessage]
	}
	if k.masked {
		masked, phoneText = values[slotMasked], values[slotPhoneText]
	}
	retryIn := 0
	if k.waiting {
		retryIn, _ = strconv.Atoi(values[slotRetryIn])
	}
	other := "ja"
	if k.lang == "ja" {
		other = "en"
	}
	return pages.Data{
		Lang: k.lang, T: pages.Messages(k.lang, "{phone}", phoneText, "{n}", strconv.Itoa(codeLength)),
		Nonce: values[slotNonce], Service: h.serviceName(), Brand: h.brand, Prefix: h.PathPrefix,
		Return: values[slotReturn], Action: k.action, CSRF: values[slotCSRF], CodeLength: codeLength,
		Message: message, Status: k.status, Masked: masked, CanChange: k.canChange,
		Delivery: k.delivery, DeliveryStatus: k.deliveryStatus, CanCall: k.canCall, RetryIn: retryIn,
		OtherLang: other, OtherLabel: pages.LangName(other), OtherURL: h.PathPrefix + "/?r=" + values[slotReturnQuery] + "&lang=" + other,
	}
}

// newPageFrames is an empty frame map, for Provision.
func newPageFrames() *pageFrames {
	return &pageFrames{frames: make(map[frameKey]*pages.Frame)}
}
