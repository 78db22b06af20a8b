package main

// pngcheck is a main package, so its tests are in the package itself.

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// picture is a w×h white image with a dark bar of bw×bh pixels at the top
// left (bw or bh 0: none), as a timeline render with one short bar is.
func picture(w, h, bw, bh int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{255, 255, 255, 255}
			if x < bw && y < bh {
				c = color.RGBA{46, 158, 68, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func save(t *testing.T, img image.Image) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "render.png")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, img))
	require.NoError(t, f.Close())
	return path
}

func TestBlankIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		img   image.Image
		blank bool
	}{
		{"all white, as a render whose window was too short", picture(1100, 98, 0, 0), true},
		{"a speck under the threshold", picture(1100, 98, 2, 2), true},
		{"one short bar drawn", picture(1100, 98, 40, 18), false},
		{"no pixels", image.NewRGBA(image.Rect(0, 0, 0, 0)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(tc.img)
			if tc.blank {
				assert.ErrorIs(t, err, errBlank)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestRunExitsNonZeroOnABlankRender(t *testing.T) {
	var stderr bytes.Buffer
	path := save(t, picture(300, 200, 0, 0))
	assert.Equal(t, 1, run([]string{path}, &stderr))
	assert.Contains(t, stderr.String(), "blank")
	assert.Contains(t, stderr.String(), path)

	stderr.Reset()
	assert.Equal(t, 0, run([]string{save(t, picture(300, 200, 100, 50))}, &stderr), stderr.String())
}

// TestCropKeepsThePicture crops a window-sized render to the picture: the
// bar at the top left survives, the white below it goes, and the file is
// written back at the picture's size.
func TestCropKeepsThePicture(t *testing.T) {
	path := save(t, picture(1100, 400, 60, 20))
	var stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-crop", "1100x98", path}, &stderr), stderr.String())
	img, err := read(path)
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 1100, 98), img.Bounds())
	assert.Equal(t, color.RGBA{46, 158, 68, 255}, rgba(img.At(10, 10)))

	_, err = crop(picture(100, 50, 0, 0), 1100, 98)
	assert.Error(t, err, "a render smaller than the picture")
	assert.False(t, errors.Is(err, errBlank))
	assert.Equal(t, 1, run([]string{"-crop", "1100x98", save(t, picture(100, 50, 100, 50))}, &stderr))
}

func TestUsageErrors(t *testing.T) {
	var stderr bytes.Buffer
	assert.Equal(t, 2, run(nil, &stderr))
	assert.Equal(t, 2, run([]string{"-crop", "wide", save(t, picture(10, 10, 5, 5))}, &stderr))
	assert.Equal(t, 2, run([]string{filepath.Join(t.TempDir(), "missing.png")}, &stderr))
}
