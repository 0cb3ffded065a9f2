//! Request planning for MC: contiguous ranges of one device become one batch read (0401);
//! words left on their own are gathered into random reads (0403).

use super::address::{McAddress, Unit};
use super::codec::{DeviceRef, Request, MAX_BATCH_BITS, MAX_BATCH_WORDS, MAX_RANDOM_POINTS};
use crate::drivers::plan::{blocks, Span};

/// One request and where each of its tags sits in the answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planned {
    pub request: Request,
    /// (tag index, first unit of the tag in the answer's words or bits, the tag).
    pub slots: Vec<(usize, usize, McAddress)>,
}

pub(crate) fn plan(tags: &[McAddress], max_gap: u32) -> Vec<Planned> {
    let mut requests = Vec::new();
    let spans: Vec<Span> = tags
        .iter()
        .map(|t| Span {
            area: u32::from(t.device.code) | if t.device.unit == Unit::Bit { 0x100 } else { 0 },
            start: t.number,
            len: t.units(),
        })
        .collect();
    let is_bit = |area: u32| area & 0x100 != 0;
    let word_blocks = blocks(&spans, u32::from(MAX_BATCH_WORDS), max_gap);
    let mut singles: Vec<usize> = Vec::new();
    for block in word_blocks.iter().filter(|b| !is_bit(b.area)) {
        // A lone word or dword goes into a random read when there are others like it.
        if block.members.len() == 1 && block.len <= 2 {
            singles.push(block.members[0]);
            continue;
        }
        requests.push(batch(
            tags,
            block.start,
            block.len,
            &block.members,
            Unit::Word,
        ));
    }
    if singles.len() == 1 {
        let i = singles[0];
        requests.push(batch(
            tags,
            tags[i].number,
            tags[i].units(),
            &singles,
            Unit::Word,
        ));
    } else {
        for chunk in singles.chunks(MAX_RANDOM_POINTS) {
            let (words, dwords): (Vec<usize>, Vec<usize>) =
                chunk.iter().partition(|&&i| tags[i].units() == 1);
            let refer = |&i: &usize| DeviceRef {
                code: tags[i].device.code,
                number: tags[i].number,
            };
            let mut slots = Vec::new();
            for (position, &i) in words.iter().enumerate() {
                slots.push((i, position, tags[i]));
            }
            for (position, &i) in dwords.iter().enumerate() {
                slots.push((i, words.len() + 2 * position, tags[i]));
            }
            requests.push(Planned {
                request: Request::RandomRead {
                    words: words.iter().map(refer).collect(),
                    dwords: dwords.iter().map(refer).collect(),
                },
                slots,
            });
        }
    }
    let bit_blocks = blocks(&spans, u32::from(MAX_BATCH_BITS), max_gap);
    for block in bit_blocks.iter().filter(|b| is_bit(b.area)) {
        requests.push(batch(
            tags,
            block.start,
            block.len,
            &block.members,
            Unit::Bit,
        ));
    }
    requests
}

fn batch(tags: &[McAddress], start: u32, len: u32, members: &[usize], unit: Unit) -> Planned {
    let device = tags[members[0]].device;
    Planned {
        request: Request::BatchRead {
            head: DeviceRef {
                code: device.code,
                number: start,
            },
            unit,
            points: len as u16,
        },
        slots: members
            .iter()
            .map(|&i| (i, (tags[i].number - start) as usize, tags[i]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataType, WordOrder};

    fn tag(text: &str, t: Option<DataType>) -> McAddress {
        McAddress::parse(text, t, WordOrder::LowFirst).unwrap()
    }

    #[test]
    fn ranges_become_batch_reads_and_scattered_words_one_random_read() {
        let tags = [
            tag("D100", None),
            tag("D101", None),
            tag("D102", Some(DataType::Float32)), // D102..D103
            tag("D5000", None),
            tag("W1A", None),
            tag("R7", Some(DataType::Int32)),
            tag("M0", None),
            tag("M3", None),
            tag("X1F", None),
        ];
        let planned = plan(&tags, 16);
        let requests: Vec<&Request> = planned.iter().map(|p| &p.request).collect();
        assert_eq!(
            requests,
            [
                &Request::BatchRead {
                    head: DeviceRef {
                        code: 0xA8,
                        number: 100
                    },
                    unit: Unit::Word,
                    points: 4
                },
                &Request::RandomRead {
                    words: vec![
                        DeviceRef {
                            code: 0xA8,
                            number: 5000
                        },
                        DeviceRef {
                            code: 0xB4,
                            number: 0x1A
                        }
                    ],
                    dwords: vec![DeviceRef {
                        code: 0xAF,
                        number: 7
                    }],
                },
                &Request::BatchRead {
                    head: DeviceRef {
                        code: 0x90,
                        number: 0
                    },
                    unit: Unit::Bit,
                    points: 4
                },
                &Request::BatchRead {
                    head: DeviceRef {
                        code: 0x9C,
                        number: 0x1F
                    },
                    unit: Unit::Bit,
                    points: 1
                },
            ]
        );
        // Nine tags, four requests; D102 sits at word 2 of the first answer.
        assert!(planned[0].slots.contains(&(2, 2, tags[2])));
        assert!(planned[1].slots.contains(&(5, 2, tags[5])));
    }
}
