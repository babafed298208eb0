// ESLint flat config: typescript-eslint's type-aware rules over every TypeScript file the
// tsconfig covers. Import cycles are checked by dpdm (`npm run lint:cycles`), not here:
// import-x/no-cycle skips type-only imports, and the cycles worth catching are mostly of types.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'src/generated/', 'node_modules/', 'data/', 'test/artifacts/'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Services, stores and envelop hook payloads are objects of closures, destructured by design; the rule cannot tell them from `this`-bound methods.
      '@typescript-eslint/unbound-method': 'off',
      // `async` without `await` is how a function keeps its promise contract when it throws (the throw becomes a rejection).
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read GraphQL responses and log lines as untyped JSON and check them with expect(); typing each shape would add casts, not safety.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    files: ['eslint.config.js'],
    extends: [js.configs.recommended],
  },
);
