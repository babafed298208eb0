-- AlterTable
ALTER TABLE "Prediction" ADD COLUMN     "generation" JSONB;
