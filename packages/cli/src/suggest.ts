/** Close names for a misspelt one: Levenshtein distance at most a third of its length. */
export function closeNames(name: string, candidates: string[]): string[] {
  const limit = Math.max(1, Math.floor(name.length / 3));
  return candidates.filter((c) => editDistance(name, c) <= limit);
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}
