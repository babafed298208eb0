-- AlterTable
ALTER TABLE "Prediction" ADD COLUMN     "interpretation" JSONB;
