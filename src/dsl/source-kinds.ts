/**
 * Attributes a DNSBL source gives the texts of a rule that looks it up, as {NAME.attr}: its zone,
 * and from the rule's last lookup that answered listed, the TXT record and the A records.
 */
export const DNSBL_ATTRIBUTES = ["zone", "reason", "codes"] as const;
export type DnsblAttribute = (typeof DNSBL_ATTRIBUTES)[number];
