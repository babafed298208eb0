/**
 * Text ⇄ token ids for a generator, from the vocabulary in its model.json
 * (`vocabulary[id]` is the token's text). Encoding is greedy longest-match, which is
 * exact for character-level vocabularies and a fair approximation for others.
 */
export class Tokenizer {
  readonly vocabulary: readonly string[];
  private readonly ids = new Map<string, number>();
  private readonly longest: number;

  constructor(vocabulary: readonly string[]) {
    this.vocabulary = vocabulary;
    vocabulary.forEach((token, id) => {
      if (token !== '' && !this.ids.has(token)) this.ids.set(token, id);
    });
    this.longest = Math.max(1, ...vocabulary.map((t) => t.length));
  }

  /** Ids of `text`, and the positions of characters no token covers. */
  encode(text: string): { ids: number[]; unknown: Array<{ index: number; char: string }> } {
    const ids: number[] = [];
    const unknown: Array<{ index: number; char: string }> = [];
    let i = 0;
    while (i < text.length) {
      let matched = false;
      for (let length = Math.min(this.longest, text.length - i); length > 0; length--) {
        const id = this.ids.get(text.slice(i, i + length));
        if (id !== undefined) {
          ids.push(id);
          i += length;
          matched = true;
          break;
        }
      }
      if (!matched) {
        const char = String.fromCodePoint(text.codePointAt(i)!);
        unknown.push({ index: i, char });
        i += char.length;
      }
    }
    return { ids, unknown };
  }

  decode(ids: readonly number[]): string {
    return ids.map((id) => this.vocabulary[id] ?? '').join('');
  }
}
