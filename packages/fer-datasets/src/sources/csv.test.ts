import { parseCsv } from './csv';

test('parseCsv: quotes, doubled quotes, embedded commas and newlines, CRLF, blank lines', () => {
  const text = 'a,b,c\r\nfer1.png,"(0, 0, 48, 48)",3\n\n"say ""hi""",x,"two\nlines"\nlast,,';
  expect(parseCsv(text)).toEqual([
    ['a', 'b', 'c'],
    ['fer1.png', '(0, 0, 48, 48)', '3'],
    ['say "hi"', 'x', 'two\nlines'],
    ['last', '', ''],
  ]);
});
