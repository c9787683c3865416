// The bitmap font of the report canvas: 5x9 pixel glyphs (cap height 7, two rows of descenders)
// on a 6 x 10 cell, one per printable ASCII character 32..126. Canvas::text (canvas.h) draws
// them, magnified by an integer scale.
#pragma once
#include <cstdint>

namespace fer::plot {

// The nine rows of `ch`'s glyph, top to bottom, bit 4 the leftmost pixel; a character outside
// 32..126 gets the glyph of '?'.
const uint8_t* glyph(char ch);

}  // namespace fer::plot
