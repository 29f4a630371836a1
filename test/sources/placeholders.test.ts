/**
 * RFC 4515 escaping of the values put into LDAP filters, without a directory: the slapd tests
 * (ldap.test.ts) show the escaped filter is answered right; these show what the escaping is.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { escapeLdapFilterValue, fillLdapFilter, valuesFor } from "../../src/sources/placeholders.js";

const hex = (byte: number) => `\\${byte.toString(16).padStart(2, "0")}`;

/** Undoes the escaping: the bytes the directory server will compare. */
function bytesOf(filterValue: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < filterValue.length; i++) {
    if (filterValue[i] === "\\") {
      bytes.push(Number.parseInt(filterValue.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(filterValue.charCodeAt(i));
  }
  return Buffer.from(bytes);
}

describe("escapeLdapFilterValue", () => {
  it("escapes every control byte, NUL and DEL included, as \\XX", () => {
    for (let byte = 0; byte < 0x20; byte++) {
      expect(escapeLdapFilterValue(`a${String.fromCharCode(byte)}b`), `byte ${byte}`).toBe(`a${hex(byte)}b`);
    }
    expect(escapeLdapFilterValue("a\x7fb")).toBe("a\\7fb");
    expect(escapeLdapFilterValue("bob@example.org\r\n(objectClass=*)")).toBe(
      "bob@example.org\\0d\\0a\\28objectClass=\\2a\\29",
    );
    expect(escapeLdapFilterValue("\0")).toBe("\\00");
  });

  it("escapes the filter's own characters and non-ASCII bytes one by one", () => {
    expect(escapeLdapFilterValue("*")).toBe("\\2a");
    expect(escapeLdapFilterValue("(")).toBe("\\28");
    expect(escapeLdapFilterValue(")")).toBe("\\29");
    expect(escapeLdapFilterValue("\\")).toBe("\\5c");
    expect(escapeLdapFilterValue("jörg")).toBe("j\\c3\\b6rg");
  });

  it("leaves the other printable ASCII characters as they are", () => {
    let printable = "";
    for (let byte = 0x20; byte <= 0x7e; byte++) {
      if (!"*()\\".includes(String.fromCharCode(byte))) printable += String.fromCharCode(byte);
    }
    expect(escapeLdapFilterValue(printable)).toBe(printable);
  });

  it("any string: only safe printable characters and \\XX escapes, which give back its UTF-8 bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.string()), (value) => {
        const escaped = escapeLdapFilterValue(value);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is that none are left
        expect(escaped).toMatch(/^(?:[^\x00-\x1f\x7f-\uffff*()\\]|\\[0-9a-f]{2})*$/);
        expect(bytesOf(escaped).equals(Buffer.from(value, "utf8"))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it("fillLdapFilter escapes control bytes in an address's quoted local part and in a raw key", () => {
    expect(fillLdapFilter("(mail={address})", valuesFor('"a\rb\0c"@example.org'))).toBe(
      '(mail="a\\0db\\00c"@example.org)',
    );
    expect(fillLdapFilter("(cn={key})", valuesFor("x\ny"))).toBe("(cn=x\\0ay)");
  });
});
