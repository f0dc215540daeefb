package caddymodule

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// The image CAPTCHA, for a page without JavaScript: the challenge's text
// (otp.Keys.CaptchaText) drawn from a 5x7 bitmap font, each glyph moved,
// sheared and scaled a little, over noise lines and speckles. Drawn by the
// server from the signed challenge, so nothing is stored and no third
// party sees the user.

// glyphs are the characters of otp's CAPTCHA alphabet, 5 columns by 7 rows.
var glyphs = map[byte][7]string{
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#"},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'6': {".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."},
}

const captchaWidth, captchaHeight = 200, 70

// drawCaptcha draws text as a PNG.
func drawCaptcha(text string) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, captchaWidth, captchaHeight))
	bg := color.RGBA{0xf4, 0xf4, 0xf0, 0xff}
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = bg.R, bg.G, bg.B, bg.A
	}
	ink := color.RGBA{0x1f, 0x29, 0x37, 0xff}
	for i := range 6 { // noise lines, in ink so they can't be filtered by colour
		y0, y1 := rand.IntN(captchaHeight), rand.IntN(captchaHeight)
		for x := range captchaWidth {
			y := y0 + (y1-y0)*x/captchaWidth + i%2
			img.Set(x, y, ink)
		}
	}
	for range 400 {
		img.Set(rand.IntN(captchaWidth), rand.IntN(captchaHeight), ink)
	}
	for i := 0; i < len(text); i++ {
		drawGlyph(img, glyphs[text[i]], 12+i*37+rand.IntN(7)-3, 10+rand.IntN(12), ink)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// drawGlyph draws g at (x0, y0) with cells of a random 5 to 6 pixels and a
// random shear.
func drawGlyph(img *image.RGBA, g [7]string, x0, y0 int, ink color.Color) {
	cell := 5 + rand.IntN(2)
	shear := rand.IntN(5) - 2 // pixels per row
	for row, line := range g {
		for col := 0; col < len(line); col++ {
			if line[col] != '#' {
				continue
			}
			x := x0 + col*cell + (3-row)*shear
			y := y0 + row*cell
			for dy := range cell {
				for dx := range cell {
					img.Set(x+dx, y+dy, ink)
				}
			}
		}
	}
}

// captchaImage serves GET {prefix}/captcha.png?c=<challenge>: the image
// of a challenge made for this identity and session.
func (h *Handler) captchaImage(v *visit, token string) error {
	if h.Captcha == nil {
		return h.render(v, http.StatusNotFound, pages.Error, v.msg("not_found"))
	}
	c, err := h.keys.OpenCaptcha(token, h.captchaBinding(v), h.clock.Now())
	if err != nil {
		return h.render(v, http.StatusNotFound, pages.Error, v.msg("not_found"))
	}
	body, err := drawCaptcha(h.keys.CaptchaText(c.ID))
	if err != nil {
		return err
	}
	hdr := v.w.Header()
	hdr.Set("Content-Type", "image/png")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	_, err = v.w.Write(body)
	return err
}
