// Command pngcheck crops a PNG that a browser rendered to the size of the
// picture it shows, and fails when what is left is blank. scripts/render-svg
// runs it on every render, so that a picture that did not draw is an error
// rather than a white PNG.
//
//	go run ./scripts/pngcheck [-crop WxH] file.png
//
// With -crop it keeps the top-left W×H pixels (the window a browser renders
// in must be taller than the picture: headless Chromium keeps part of the
// window for itself) and writes the file back. It exits 1, naming the
// file, when the image is blank: fewer than MinInk of its pixels (0.2%)
// differ from its most common colour. It exits 2 on a usage error or an
// image it cannot read.
package main

import (
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"os"
)

// MinInk is the share of pixels that must differ from the background for
// an image not to be blank.
const MinInk = 0.002

// errBlank is the error of a blank image.
var errBlank = errors.New("blank")

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pngcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.String("crop", "", "keep the top-left `WxH` pixels and write the file back")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: pngcheck [-crop WxH] file.png")
		return 2
	}
	path := fs.Arg(0)
	img, err := read(path)
	if err != nil {
		fmt.Fprintf(stderr, "pngcheck: %v\n", err)
		return 2
	}
	if *size != "" {
		var w, h int
		if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil || w <= 0 || h <= 0 {
			fmt.Fprintf(stderr, "pngcheck: -crop %q: want WxH\n", *size)
			return 2
		}
		if img, err = crop(img, w, h); err != nil {
			fmt.Fprintf(stderr, "pngcheck: %s: %v\n", path, err)
			return 1
		}
		if err := write(path, img); err != nil {
			fmt.Fprintf(stderr, "pngcheck: %v\n", err)
			return 2
		}
	}
	if err := check(img); err != nil {
		fmt.Fprintf(stderr, "pngcheck: %s: %v\n", path, err)
		return 1
	}
	return 0
}

func read(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func write(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// crop returns the top-left w×h pixels of img; an image smaller than that
// is an error (the browser's window was too small for the picture).
func crop(img image.Image, w, h int) (image.Image, error) {
	b := img.Bounds()
	if b.Dx() < w || b.Dy() < h {
		return nil, fmt.Errorf("rendered %dx%d, smaller than the picture's %dx%d", b.Dx(), b.Dy(), w, h)
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out, nil
}

// check fails with errBlank when fewer than MinInk of img's pixels differ
// from its most common colour.
func check(img image.Image) error {
	b := img.Bounds()
	total := b.Dx() * b.Dy()
	if total == 0 {
		return fmt.Errorf("%w: no pixels", errBlank)
	}
	counts := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			counts[rgba(img.At(x, y))]++
		}
	}
	most := 0
	var bg color.RGBA
	for c, n := range counts {
		if n > most {
			most, bg = n, c
		}
	}
	ink := float64(total-most) / float64(total)
	if ink < MinInk {
		return fmt.Errorf("%w: %.3f%% of %dx%d pixels differ from the background %v (at least %.1f%% must)",
			errBlank, 100*ink, b.Dx(), b.Dy(), bg, 100*MinInk)
	}
	return nil
}

func rgba(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}
