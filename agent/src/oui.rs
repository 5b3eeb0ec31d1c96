//! Vendor of a MAC address by its OUI, from a table generated out of the IEEE registry
//! (`tools/gen_oui.py`), restricted to the vendors found on OT networks and the usual IT
//! ones. Locally administered addresses have no vendor.

#[path = "oui_table.rs"]
mod table;

use crate::decode::Mac;

/// The vendor of `mac`, if its OUI is in the table.
pub fn vendor(mac: &Mac) -> Option<&'static str> {
    if mac[0] & 0x02 != 0 {
        return None;
    }
    let oui = u32::from_be_bytes([0, mac[0], mac[1], mac[2]]);
    let i = table::OUI.binary_search_by_key(&oui, |&(o, _)| o).ok()?;
    let (_, v) = table::OUI.get(i)?;
    table::VENDORS.get(usize::from(*v)).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_sorted() {
        assert!(super::table::OUI.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
