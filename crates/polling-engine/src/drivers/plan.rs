//! Request planning shared by the register protocols: merge the addresses of a group into as
//! few contiguous reads as the protocol's per-request limit allows, bridging small gaps.

/// Where one tag lies: an area (a device or a Modbus table, as the driver numbers them), the
/// first unit (word or bit) and how many units it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The device or table.
    pub area: u32,
    /// First unit.
    pub start: u32,
    /// Units taken (at least 1).
    pub len: u32,
}

/// One contiguous read and the tags it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The device or table.
    pub area: u32,
    /// First unit read.
    pub start: u32,
    /// Units read.
    pub len: u32,
    /// Indices (into the planned spans) of the tags inside this block.
    pub members: Vec<usize>,
}

/// Merges `spans` into blocks of at most `max_len` units, joining two spans of one area when
/// at most `max_gap` unused units lie between them. Blocks come sorted by area and start.
pub fn blocks(spans: &[Span], max_len: u32, max_gap: u32) -> Vec<Block> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| (spans[i].area, spans[i].start, spans[i].len));
    let mut result: Vec<Block> = Vec::new();
    for index in order {
        let span = spans[index];
        let end = span.start.saturating_add(span.len);
        if let Some(block) = result.last_mut() {
            let block_end = block.start + block.len;
            let joins = block.area == span.area
                && span.start <= block_end.saturating_add(max_gap)
                && end.max(block_end) - block.start <= max_len;
            if joins {
                block.len = end.max(block_end) - block.start;
                block.members.push(index);
                continue;
            }
        }
        result.push(Block {
            area: span.area,
            start: span.start,
            len: span.len,
            members: vec![index],
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(area: u32, start: u32, len: u32) -> Span {
        Span { area, start, len }
    }

    #[test]
    fn contiguous_and_nearly_contiguous_spans_share_a_block() {
        let spans = [
            span(0, 102, 1),
            span(0, 100, 2), // a dword at 100..102
            span(0, 110, 1), // 7 words after 103: bridged with max_gap 8
            span(0, 200, 1), // too far
            span(1, 100, 1), // another device
        ];
        let planned = blocks(&spans, 960, 8);
        assert_eq!(
            planned,
            [
                Block {
                    area: 0,
                    start: 100,
                    len: 11,
                    members: vec![1, 0, 2]
                },
                Block {
                    area: 0,
                    start: 200,
                    len: 1,
                    members: vec![3]
                },
                Block {
                    area: 1,
                    start: 100,
                    len: 1,
                    members: vec![4]
                },
            ]
        );
    }

    #[test]
    fn blocks_respect_the_per_request_limit() {
        let spans: Vec<Span> = (0..300).map(|i| span(0, i, 1)).collect();
        let planned = blocks(&spans, 125, 0);
        let lens: Vec<u32> = planned.iter().map(|b| b.len).collect();
        assert_eq!(lens, [125, 125, 50]);
        // Overlapping spans (a word and a bit of it) do not lengthen the block.
        let planned = blocks(&[span(0, 5, 2), span(0, 5, 1), span(0, 6, 1)], 125, 0);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].len, 2);
    }
}
