//! Pictures of arenas: every block in address order as an SVG bar, one bar per arena.
//!
//! Used bytes, free bytes and overhead (headers, sentinels) get one colour each; each bar is
//! scaled to the same width, so a bar shows where in its arena the free space lies and how
//! scattered it is. Every block carries a `<title>` tooltip with its kind, offset and size.
//!
//! ```
//! use mempools_stats::{ArenaMap, MapBlock, MapBlockKind};
//! let arena = ArenaMap {
//!     start: 0x1000,
//!     size: 64,
//!     blocks: vec![
//!         MapBlock { offset: 0, size: 16, kind: MapBlockKind::Used },
//!         MapBlock { offset: 16, size: 48, kind: MapBlockKind::Free },
//!     ],
//! };
//! let svg = poolstat::svg::render_map("heap", &[arena]);
//! assert!(svg.starts_with("<svg") && svg.contains(poolstat::svg::FREE_COLOUR));
//! ```

use std::fmt::Write;

use mempools_stats::{ArenaMap, MapBlockKind};

/// Fill colour of used bytes.
pub const USED_COLOUR: &str = "#d95f45";
/// Fill colour of free bytes.
pub const FREE_COLOUR: &str = "#7fc97f";
/// Fill colour of overhead (headers, sentinels, bookkeeping).
pub const OVERHEAD_COLOUR: &str = "#8c8c8c";
/// Width of every arena bar, in pixels.
pub const BAR_WIDTH: f64 = 960.0;

const MARGIN: f64 = 12.0;
const BAR_HEIGHT: f64 = 28.0;
const ROW_HEIGHT: f64 = 58.0;
const HEADER_HEIGHT: f64 = 64.0;

/// The colour and the CSS class of a block kind.
pub fn style(kind: MapBlockKind) -> (&'static str, &'static str) {
    match kind {
        MapBlockKind::Used => (USED_COLOUR, "used"),
        MapBlockKind::Free => (FREE_COLOUR, "free"),
        MapBlockKind::Overhead => (OVERHEAD_COLOUR, "overhead"),
    }
}

/// Bytes of each kind over all arenas: (used, free, overhead).
pub fn totals(arenas: &[ArenaMap]) -> (usize, usize, usize) {
    let mut totals = (0, 0, 0);
    for block in arenas.iter().flat_map(|a| &a.blocks) {
        match block.kind {
            MapBlockKind::Used => totals.0 += block.size,
            MapBlockKind::Free => totals.1 += block.size,
            MapBlockKind::Overhead => totals.2 += block.size,
        }
    }
    totals
}

/// Draws `arenas` of the pool `pool` as an SVG document: a title, a legend with the byte
/// totals of each kind, then one bar per arena with a label (index, start address, size,
/// blocks) and one `<rect class="used|free|overhead">` per block whose `x` and `width` are
/// proportional to the block's offset and size within its arena.
pub fn render_map(pool: &str, arenas: &[ArenaMap]) -> String {
    let width = BAR_WIDTH + 2.0 * MARGIN;
    let height = HEADER_HEIGHT + ROW_HEIGHT * arenas.len() as f64 + MARGIN;
    let (used, free, overhead) = totals(arenas);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN}" y="20" font-size="15" font-weight="bold">{} — {} arena{}, blocks in address order</text>"#,
        escape(pool),
        arenas.len(),
        if arenas.len() == 1 { "" } else { "s" }
    );
    let mut x = MARGIN;
    for (kind, bytes) in
        [(MapBlockKind::Used, used), (MapBlockKind::Free, free), (MapBlockKind::Overhead, overhead)]
    {
        let (colour, class) = style(kind);
        let _ = writeln!(
            svg,
            r#"<g class="legend"><rect x="{x}" y="32" width="14" height="14" fill="{colour}"/><text x="{}" y="44">{class} {bytes} B</text></g>"#,
            x + 18.0
        );
        x += 170.0;
    }
    for (row, arena) in arenas.iter().enumerate() {
        let top = HEADER_HEIGHT + ROW_HEIGHT * row as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{MARGIN}" y="{}">arena {row} at {:#x}: {} bytes, {} blocks</text>"#,
            top + 12.0,
            arena.start,
            arena.size,
            arena.blocks.len()
        );
        let bar_top = top + 18.0;
        let _ = writeln!(svg, r#"<g class="arena" data-index="{row}">"#);
        if arena.size > 0 {
            let scale = BAR_WIDTH / arena.size as f64;
            for block in &arena.blocks {
                let (colour, class) = style(block.kind);
                let _ = writeln!(
                    svg,
                    r#"<rect class="{class}" x="{:.3}" y="{bar_top}" width="{:.3}" height="{BAR_HEIGHT}" fill="{colour}"><title>{class}: offset {}, {} bytes</title></rect>"#,
                    MARGIN + block.offset as f64 * scale,
                    block.size as f64 * scale,
                    block.offset,
                    block.size
                );
            }
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{MARGIN}" y="{bar_top}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" fill="none" stroke="#333" stroke-width="0.5"/>"##
        );
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mempools_stats::MapBlock;

    fn block(offset: usize, size: usize, kind: MapBlockKind) -> MapBlock {
        MapBlock { offset, size, kind }
    }

    /// The value of attribute `name` in the element text `element`.
    fn attr<'a>(element: &'a str, name: &str) -> &'a str {
        let key = format!(" {name}=\"");
        let start = element.find(&key).unwrap_or_else(|| panic!("no {name} in {element}")) + key.len();
        &element[start..start + element[start..].find('"').unwrap()]
    }

    /// The block rects (those with a class) of the SVG text.
    fn block_rects(svg: &str) -> Vec<&str> {
        svg.lines().filter(|l| l.starts_with("<rect class=")).collect()
    }

    fn sample() -> Vec<ArenaMap> {
        Vec::from([
            ArenaMap {
                start: 0x10_0000,
                size: 1000,
                blocks: Vec::from([
                    block(0, 50, MapBlockKind::Overhead),
                    block(50, 200, MapBlockKind::Used),
                    block(250, 250, MapBlockKind::Free),
                    block(500, 500, MapBlockKind::Used),
                ]),
            },
            ArenaMap {
                start: 0x20_0000,
                size: 100,
                blocks: Vec::from([block(0, 25, MapBlockKind::Used), block(25, 75, MapBlockKind::Free)]),
            },
        ])
    }

    #[test]
    fn one_rect_per_block_coloured_by_kind() {
        let svg = render_map("payloads", &sample());
        let rects = block_rects(&svg);
        assert_eq!(rects.len(), 6);
        let classes: Vec<&str> = rects.iter().map(|r| attr(r, "class")).collect();
        assert_eq!(classes, ["overhead", "used", "free", "used", "used", "free"]);
        for rect in &rects {
            let expected = match attr(rect, "class") {
                "used" => USED_COLOUR,
                "free" => FREE_COLOUR,
                _ => OVERHEAD_COLOUR,
            };
            assert_eq!(attr(rect, "fill"), expected);
        }
        assert!(rects[2].contains("<title>free: offset 250, 250 bytes</title>"), "{}", rects[2]);
    }

    #[test]
    fn widths_are_proportional_to_sizes_and_each_bar_fills_the_width() {
        let svg = render_map("payloads", &sample());
        let rects = block_rects(&svg);
        let num = |r: &str, a: &str| attr(r, a).parse::<f64>().unwrap();
        // First arena: 1000 bytes over BAR_WIDTH pixels.
        assert!((num(rects[1], "width") - 200.0 * BAR_WIDTH / 1000.0).abs() < 0.01);
        assert!((num(rects[3], "width") / num(rects[1], "width") - 2.5).abs() < 1e-3);
        assert!((num(rects[2], "x") - (MARGIN + 250.0 * BAR_WIDTH / 1000.0)).abs() < 0.01);
        // Second arena is scaled to the same width: 25 of 100 bytes is a quarter of the bar.
        assert!((num(rects[4], "width") - BAR_WIDTH / 4.0).abs() < 0.01);
        for range in [0..4, 4..6] {
            let total: f64 = rects[range].iter().map(|r| num(r, "width")).sum();
            assert!((total - BAR_WIDTH).abs() < 0.01, "{total}");
        }
        // Rows do not overlap.
        assert!(num(rects[4], "y") > num(rects[0], "y") + BAR_HEIGHT);
    }

    #[test]
    fn legend_and_labels_carry_the_totals_and_names_are_escaped() {
        let svg = render_map("a<b>&\"c\"", &sample());
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&quot;"));
        assert!(!svg.contains("a<b>"));
        assert_eq!(totals(&sample()), (725, 325, 50));
        assert!(
            svg.contains(">used 725 B<") && svg.contains(">free 325 B<") && svg.contains(">overhead 50 B<")
        );
        assert!(svg.contains("arena 1 at 0x200000: 100 bytes, 2 blocks"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    }

    #[test]
    fn empty_arenas_and_no_arenas_render() {
        let svg = render_map("empty", &[ArenaMap::default()]);
        assert!(block_rects(&svg).is_empty());
        assert!(svg.contains("arena 0 at 0x0: 0 bytes, 0 blocks"));
        assert!(render_map("none", &[]).contains("0 arenas"));
    }
}
