/** Attributes a DNSBL source gives the texts of a rule that looks it up, as {NAME.attr}. */
export const DNSBL_ATTRIBUTES = ["zone", "reason"] as const;
