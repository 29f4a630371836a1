import { describe, expect, it } from "vitest";
import { fillLdapFilter, fillPath, fillUrl, valuesFor } from "../../src/sources/placeholders.js";

describe("placeholders are filled with the normalised address", () => {
  it("{address} and {key} are its one spelling; {user} its unquoted local part without +detail", () => {
    expect(valuesFor('"bob"@Example.ORG.')).toEqual({
      user: "bob",
      domain: "example.org",
      address: "bob@example.org",
      key: "bob@example.org",
    });
    // Local-part case is the registry's to fold (it knows local_part); quoting is undone here.
    expect(valuesFor('"Bob+x y"@Example.ORG', "+")).toEqual({
      user: "Bob",
      domain: "example.org",
      address: '"Bob+x y"@example.org',
      key: '"Bob+x y"@example.org',
    });
    expect(valuesFor("bob+lists@example.org", "+").user).toBe("bob");
    expect(valuesFor("+bob@example.org", "+").user).toBe("+bob");
  });

  it("a key without @ is used as it is", () => {
    expect(valuesFor("Example.ORG")).toEqual({
      user: "Example.ORG",
      domain: "",
      address: "Example.ORG",
      key: "Example.ORG",
    });
    expect(valuesFor('"quoted"').key).toBe('"quoted"');
  });

  it("what the quotes hid is still refused in paths and escaped in URLs and LDAP filters", () => {
    for (const key of [
      '"../bob"@example.org',
      '"bob/../alice"@example.org',
      '".bob"@example.org',
      '"b\\\0b"@x',
    ]) {
      expect(fillPath("/var/mail/{user}/Maildir", valuesFor(key)), key).toBeUndefined();
    }
    expect(fillUrl("http://q/quota?u={user}", valuesFor('"a&b=c d"@example.org'))).toBe(
      "http://q/quota?u=a%26b%3Dc%20d",
    );
    expect(fillLdapFilter("(mail={address})", valuesFor('"a*)(x"@example.org'))).toBe(
      '(mail="a\\2a\\29\\28x"@example.org)',
    );
  });
});
