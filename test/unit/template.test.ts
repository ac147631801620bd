import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { alignTable, compileTable, compileTemplate, GoNil, GoTime } from '../../src/cli/template.js';

const data = {
  Digest: 'sha256:ab',
  RepoTags: ['1', '2'],
  Labels: { version: '3', 'org.x': 'y' },
  Empty: [],
  Nothing: null,
  Created: new GoTime('2024-05-01T12:34:56.120Z'),
  Layers: [{ Digest: 'a', Size: 1 }, { Digest: 'b', Size: 2 }],
};
const render = (t: string, d: unknown = data) => compileTemplate(t)(d);

describe('--format templates (Go text/template subset)', () => {
  it('fields, nested fields, missing keys as <no value>, nil, lists and maps as Go prints them', () => {
    assert.equal(render('{{.Digest}} {{ .Labels.version }}'), 'sha256:ab 3');
    assert.equal(render('{{.Labels.missing}}|{{.Nothing}}|{{.Nope.Deeper}}'), '<no value>|<nil>|<no value>');
    assert.equal(render('{{.RepoTags}} {{.Labels}} {{.Empty}}'), '[1 2] map[org.x:y version:3] []');
    assert.equal(render('{{.}}', 'x'), 'x');
  });
  it('json, index, join, upper, lower, println', () => {
    assert.equal(render('{{json .RepoTags}} {{json .Labels}} {{json .Nothing}}'), '["1","2"] {"version":"3","org.x":"y"} null');
    assert.equal(render('{{index .Labels "org.x"}}|{{index .Labels "none"}}'), 'y|');
    assert.equal(render('{{join .RepoTags ","}}'), '1,2');
    assert.equal(render('{{upper .Digest}} {{lower "AB"}}'), 'SHA256:AB ab');
    assert.equal(render('{{println .Digest}}'), 'sha256:ab\n');
  });
  it('else if chains end with one {{end}}; else followed by anything but if is an error', () => {
    const t = '{{if eq .N 1}}one{{else if eq .N 2}}two{{else if gt .N 9}}big{{else}}other{{end}}.';
    assert.deepEqual([1, 2, 10, 5].map((n) => render(t, { N: n })), ['one.', 'two.', 'big.', 'other.']);
    assert.throws(() => render('{{if .A}}x{{else foo}}y{{end}}'), /after else only "if"/);
    assert.throws(() => render('{{if .A}}x{{else if .B}}y{{end}}{{end}}'), /end.*without/);
  });
  it('range (over lists and maps, with else) and if/else with Go truth', () => {
    assert.equal(render('{{range .Layers}}{{.Digest}}={{.Size}};{{end}}'), 'a=1;b=2;');
    assert.equal(render('{{range .Empty}}x{{else}}none{{end}}'), 'none');
    assert.equal(render('{{range .Labels}}{{.}},{{end}}'), 'y,3,');
    assert.equal(render('{{if .RepoTags}}yes{{else}}no{{end}} {{if .Empty}}yes{{else}}no{{end}} {{if .Nothing}}yes{{end}}'), 'yes no ');
  });
  it("Go's functions: len, comparisons, and/or/not, print/printf, sub-expressions with fields, pipelines", () => {
    assert.equal(render('{{len .RepoTags}} {{len .Labels}} {{len .Digest}} {{len .Nothing}}'), '2 2 9 0');
    assert.equal(render('{{eq .Digest "x" "sha256:ab"}} {{ne (len .Layers) 2}} {{lt 1 2}} {{le 2 2}} {{gt 1.5 2}} {{ge "b" "a"}}'), 'true false true true false true');
    assert.equal(render('{{if and .RepoTags (not .Empty)}}y{{end}} {{or .Empty .Nothing "d"}} {{and 1 0 2}} {{or 0 ""}}|'), 'y d 0 |');
    assert.equal(render('{{print 1 2 "a" "b" 3 .Nothing}}'), '1 2ab3 <nil>');
    assert.equal(render('{{printf "%s/%d/%q/%v/%t/%x/%X/%.2f/%%" .Digest 42 "q" .RepoTags true 255 "hi" 3.14159}}'), 'sha256:ab/42/"q"/[1 2]/true/ff/6869/3.14/%');
    assert.equal(render('{{printf "%5s|%-5s|%05d|%.3s" "ab" "ab" 42 "abcdef"}}'), '   ab|ab   |00042|abc');
    assert.equal(render('{{printf "%d %s" "x"}} {{printf "%s" "a" 1}}'), '%!d(string=x) %!s(MISSING) a%!(EXTRA int=1)');
    assert.equal(render('{{(index .Layers 1).Digest}} {{if gt (len .Layers) 1}}many{{end}}'), 'b many');
    assert.equal(render('{{.Digest | upper}} {{.RepoTags | len | printf "%d tags"}}'), 'SHA256:AB 2 tags');
  });
  it("a typed field's nil map or slice prints as Go prints it (map[], []), is false and empty, and is null in json", () => {
    const d = { Labels: new GoNil('map'), Env: new GoNil('slice') };
    assert.equal(render('{{.Labels}} {{.Env}} {{len .Labels}} {{if .Env}}y{{else}}n{{end}} {{range .Labels}}x{{else}}none{{end}} {{index .Labels "a"}}| {{json .Labels}} {{printf "%v" .Env}}', d), 'map[] [] 0 n none | null []');
  });
  it('trim markers, and times printed as Go prints time.Time (RFC 3339 in json)', () => {
    assert.equal(render('a  {{- .Digest -}}  b'), 'asha256:abb');
    assert.equal(render('{{.Created}}'), '2024-05-01 12:34:56.12 +0000 UTC');
    assert.equal(render('{{json .Created}}'), '"2024-05-01T12:34:56.120Z"');
    assert.equal(String(new GoTime('2024-01-01T00:00:00+02:00')), '2024-01-01 00:00:00 +0200 +0200');
  });
  it('errors name what is wrong, before anything runs', () => {
    for (const [t, why] of [['{{.A', /unclosed/], ['{{with .A}}x{{end}}', /with.*not supported/], ['{{$x := .A}}', /variables/], ['{{nosuch .A}}', /nosuch.*not supported/], ['{{len (.A}}', /unclosed \(/], ['{{.A .B}}', /not a function/], ['{{if .A}}x', /if.*without \{\{end\}\}/], ['{{end}}', /end.*without/], ['{{}}', /empty/], ['{{json .A .B}}', /json takes one value/]] as const) {
      assert.throws(() => render(t), (e: Error) => why.test(e.message) && e.message.includes('--format'), t);
    }
  });
  it('tables: a header of column titles, then aligned rows', () => {
    const table = compileTable('table {{.Repository}} {{.Tag}}\t{{.Size}}', { Repository: 'REPOSITORY', Tag: 'TAG', Size: 'SIZE' })!;
    assert.deepEqual(table.header, ['REPOSITORY', 'TAG', 'SIZE']);
    const out = alignTable([table.header, table.row({ Repository: 'localhost/a', Tag: '1', Size: '2 MB' })]);
    // (Go's tabwriter as podman sets it up: columns at least 12 wide, 2 spaces of padding.)
    assert.equal(out, 'REPOSITORY   TAG         SIZE\nlocalhost/a  1           2 MB\n');
    assert.equal(compileTable('{{.Repository}}', {}), undefined);
  });
});
