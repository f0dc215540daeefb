package caddymodule

import (
	"strconv"
	"sync"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// A refusal's page (the 429 of a limit or a cooldown, the 422 of a dead
// challenge) is the send page with a message. Under a bot flood it is
// most of what the handler writes, so it is written from a pages.Frame,
// rendered once per language and variant, with the request's values put
// in (issue 17): the bytes are the template's
// (TestFramedSendPageIsTheTemplates).

// pageFrames are a handler's send-page frames, built when first needed.
type pageFrames struct {
	mu sync.Mutex
	// by variant; nil: this variant can't be framed, render the template
	frames map[frameKey]*pages.Frame
}

// frameKey is what changes a send page's text other than its spliced
// values. Every part is from the configuration or a handful of words
// (the language, the message's status), never from the request as is.
type frameKey struct {
	lang, status, action string
	masked, canChange    bool
}

// maxFrames bounds pageFrames: the variants are a few per language and
// action, so a full map means something unforeseen, and the template.
const maxFrames = 128

// The values a send page's frame puts in, in this order.
const (
	slotNonce = iota
	slotCSRF
	slotMessage
	slotMasked
	slotReturn
	slotReturnQuery // the return path in the other language's link
	slotCount
)

var frameSplices = []pages.Splice{
	slotNonce: pages.Escaped, slotCSRF: pages.Escaped, slotMessage: pages.Escaped, slotMasked: pages.Escaped,
	slotReturn: pages.Escaped, slotReturnQuery: pages.QueryEscaped,
}

var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// writeFramed writes the send page from its frame when data is a plain
// refusal (a message, and nothing a frame does not splice) on the
// embedded pages, and says whether it did; false: nothing was written.
func (h *Handler) writeFramed(v *visit, status int, page string, data pages.Data, nonce string) bool {
	if page != pages.Send || h.frames == nil || h.pages != pages.Default || !framable(data) {
		return false
	}
	f := h.frameFor(frameKey{lang: v.lang, status: data.Status, action: data.Action, masked: data.Masked != "", canChange: data.CanChange})
	if f == nil {
		return false
	}
	var values [slotCount]string
	values[slotNonce], values[slotCSRF], values[slotMessage] = nonce, h.csrfToken(v), data.Message
	values[slotMasked], values[slotReturn], values[slotReturnQuery] = data.Masked, v.ret, urlQueryEscape(v.ret)
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

// framable says whether a send page's data is what a frame shows: a
// message (which a frame needs non-empty), the masked number, the change
// link, and nothing else the send page shows. Key and RetryIn are not on
// the send page.
func framable(d pages.Data) bool {
	return d.Message != "" && d.Captcha == nil && !d.Enrolling && d.Formatted == "" && !d.Changing && d.Title == "" &&
		d.Delivery == "" && d.DeliveryStatus == "" && !d.CanCall && d.Remaining == 0 && d.ResumeURL == "" &&
		d.ResumeField == "" && d.ResumeID == "" && d.T == nil && d.Nonce == "" && d.CSRF == "" && d.OtherURL == ""
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
	f, err := h.pages.NewFrame(pages.Send, frameSplices, func(values []string) pages.Data { return h.frameData(k, values) })
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

// frameData is the send page's data as render fills it, with values in
// the spliced fields.
func (h *Handler) frameData(k frameKey, values []string) pages.Data {
	codeLength := h.service.Config().CodeLength
	masked := ""
	if k.masked {
		masked = values[slotMasked]
	}
	other := "ja"
	if k.lang == "ja" {
		other = "en"
	}
	return pages.Data{
		Lang: k.lang, T: pages.Messages(k.lang, "{phone}", unbreakable.Replace(masked), "{n}", strconv.Itoa(codeLength)),
		Nonce: values[slotNonce], Service: h.serviceName(), Brand: h.brand, Prefix: h.PathPrefix,
		Return: values[slotReturn], Action: k.action, CSRF: values[slotCSRF], CodeLength: codeLength,
		Message: values[slotMessage], Status: k.status, Masked: masked, CanChange: k.canChange,
		OtherLang: other, OtherLabel: pages.LangName(other), OtherURL: h.PathPrefix + "/?r=" + values[slotReturnQuery] + "&lang=" + other,
	}
}

// newPageFrames is an empty frame map, for Provision.
func newPageFrames() *pageFrames {
	return &pageFrames{frames: make(map[frameKey]*pages.Frame)}
}
